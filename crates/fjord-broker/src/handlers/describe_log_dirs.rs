//! DescribeLogDirs: the log directory and the size of every partition in it.

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use super::str_bytes;
use crate::dispatch::RequestContext;
use crate::Broker;

/// Describes the requested partitions (all when `topics` is null).
pub(crate) fn handle(
    broker: &Broker,
    _ctx: &RequestContext<'_>,
    request: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let wanted: Option<Vec<(String, Vec<i32>)>> = request.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.topic.to_string(), t.partitions))
            .collect()
    });
    let mut result = DescribeLogDirsResult::default();
    let dir = broker.logs.log_dir();
    result.log_dir = str_bytes(
        dir.canonicalize()
            .unwrap_or_else(|_| dir.to_path_buf())
            .display()
            .to_string(),
    );
    for topic in broker.logs.topics() {
        let selected: Option<&Vec<i32>> = match &wanted {
            None => None,
            Some(list) => match list.iter().find(|(n, _)| *n == topic.name) {
                Some((_, parts)) => Some(parts),
                None => continue,
            },
        };
        let mut out = DescribeLogDirsTopic::default();
        out.name = TopicName(str_bytes(topic.name.clone()));
        for p in topic.hosted() {
            if selected.is_some_and(|s| !s.contains(&p.index)) {
                continue;
            }
            let Ok(size) = p.with_log(|log| Ok(log.size_bytes())) else {
                continue;
            };
            let mut d = DescribeLogDirsPartition::default();
            d.partition_index = p.index;
            d.partition_size = size as i64;
            out.partitions.push(d);
        }
        if !out.partitions.is_empty() {
            result.topics.push(out);
        }
    }
    let mut response = DescribeLogDirsResponse::default();
    response.results = vec![result];
    response
}
