//! Prometheus text exposition format 0.0.4 for a [`Snapshot`].

use std::fmt::Write;

use super::{LogSnapshot, Snapshot, LATENCY_BUCKETS_MS};

/// The `Content-Type` of the rendered text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders every metric family, with `# HELP` and `# TYPE`, in a stable order.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(4096 + 256 * (s.logs.len() * 3 + s.topics.len() * 3));
    let w = &mut out;

    family(
        w,
        "kafka_server_brokertopicmetrics_bytesin_total",
        "counter",
        "Record-batch bytes appended, per topic.",
    );
    for t in &s.topics {
        sample(
            w,
            "kafka_server_brokertopicmetrics_bytesin_total",
            &[("topic", &t.topic)],
            t.bytes_in,
        );
    }
    family(
        w,
        "kafka_server_brokertopicmetrics_bytesout_total",
        "counter",
        "Record bytes returned to fetchers, per topic.",
    );
    for t in &s.topics {
        sample(
            w,
            "kafka_server_brokertopicmetrics_bytesout_total",
            &[("topic", &t.topic)],
            t.bytes_out,
        );
    }
    family(
        w,
        "kafka_server_brokertopicmetrics_messagesin_total",
        "counter",
        "Records appended, per topic.",
    );
    for t in &s.topics {
        sample(
            w,
            "kafka_server_brokertopicmetrics_messagesin_total",
            &[("topic", &t.topic)],
            t.messages_in,
        );
    }

    family(
        w,
        "kafka_network_requestmetrics_requests_total",
        "counter",
        "Requests handled, per API.",
    );
    for (name, r) in &s.requests {
        sample(
            w,
            "kafka_network_requestmetrics_requests_total",
            &[("request", name)],
            r.count,
        );
    }
    family(
        w,
        "kafka_network_requestmetrics_totaltimems",
        "histogram",
        "Time to decode, handle (including waits) and encode a request, in milliseconds.",
    );
    for (name, r) in &s.requests {
        for (bound, count) in LATENCY_BUCKETS_MS.iter().zip(r.buckets.iter()) {
            let le = bound.to_string();
            sample(
                w,
                "kafka_network_requestmetrics_totaltimems_bucket",
                &[("request", name), ("le", &le)],
                count,
            );
        }
        sample(
            w,
            "kafka_network_requestmetrics_totaltimems_bucket",
            &[("request", name), ("le", "+Inf")],
            r.count,
        );
        sample(
            w,
            "kafka_network_requestmetrics_totaltimems_sum",
            &[("request", name)],
            r.sum_ms,
        );
        sample(
            w,
            "kafka_network_requestmetrics_totaltimems_count",
            &[("request", name)],
            r.count,
        );
    }

    family(
        w,
        "kafka_server_delayedoperationpurgatory_purgatorysize",
        "gauge",
        "Requests waiting: acks=all produces for durability, fetches for min_bytes.",
    );
    let purgatory = "kafka_server_delayedoperationpurgatory_purgatorysize";
    sample(
        w,
        purgatory,
        &[("delayedOperation", "Produce")],
        s.delayed_produce,
    );
    sample(
        w,
        purgatory,
        &[("delayedOperation", "Fetch")],
        s.delayed_fetch,
    );

    family(
        w,
        "kafka_server_socketservermetrics_connection_count",
        "gauge",
        "Open client connections.",
    );
    sample(
        w,
        "kafka_server_socketservermetrics_connection_count",
        &[],
        s.connections,
    );

    family(
        w,
        "kafka_server_replicamanager_partitioncount",
        "gauge",
        "Partitions hosted by this broker.",
    );
    sample(
        w,
        "kafka_server_replicamanager_partitioncount",
        &[],
        s.partition_count,
    );
    family(
        w,
        "kafka_server_replicamanager_underreplicatedpartitions",
        "gauge",
        "Partitions whose in-sync replicas are fewer than their replicas.",
    );
    sample(
        w,
        "kafka_server_replicamanager_underreplicatedpartitions",
        &[],
        s.under_replicated,
    );
    family(
        w,
        "kafka_controller_kafkacontroller_offlinepartitionscount",
        "gauge",
        "Partitions without a live leader.",
    );
    sample(
        w,
        "kafka_controller_kafkacontroller_offlinepartitionscount",
        &[],
        s.offline_partitions,
    );
    family(
        w,
        "kafka_controller_kafkacontroller_activecontrollercount",
        "gauge",
        "1 on the active controller of the metadata quorum, else 0.",
    );
    sample(
        w,
        "kafka_controller_kafkacontroller_activecontrollercount",
        &[],
        s.active_controller,
    );
    family(
        w,
        "kafka_server_replicamanager_isrshrinks_total",
        "counter",
        "Followers removed from the ISR of partitions led here.",
    );
    sample(
        w,
        "kafka_server_replicamanager_isrshrinks_total",
        &[],
        s.isr_shrinks,
    );
    family(
        w,
        "kafka_server_replicamanager_isrexpands_total",
        "counter",
        "Followers added back to the ISR of partitions led here.",
    );
    sample(
        w,
        "kafka_server_replicamanager_isrexpands_total",
        &[],
        s.isr_expands,
    );

    log_gauge(
        w,
        s,
        "kafka_log_log_size",
        "Bytes of the partition's segments on disk.",
        |l| l.size.to_string(),
    );
    log_gauge(
        w,
        s,
        "kafka_log_log_logstartoffset",
        "First offset in the partition's log.",
        |l| l.log_start_offset.to_string(),
    );
    log_gauge(
        w,
        s,
        "kafka_log_log_logendoffset",
        "Offset the next record appended to the partition gets.",
        |l| l.log_end_offset.to_string(),
    );

    family(
        w,
        "kafka_consumergroup_lag",
        "gauge",
        "Log end offset minus the group's committed offset, per partition.",
    );
    for l in &s.lag {
        let partition = l.partition.to_string();
        sample(
            w,
            "kafka_consumergroup_lag",
            &[
                ("group", &l.group),
                ("topic", &l.topic),
                ("partition", &partition),
            ],
            l.lag,
        );
    }
    out
}

/// One gauge family with a series per partition log.
fn log_gauge(
    w: &mut String,
    s: &Snapshot,
    name: &str,
    help: &str,
    value: impl Fn(&LogSnapshot) -> String,
) {
    family(w, name, "gauge", help);
    for l in &s.logs {
        let partition = l.partition.to_string();
        sample(
            w,
            name,
            &[("topic", &l.topic), ("partition", &partition)],
            value(l),
        );
    }
}

fn family(w: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(w, "# HELP {name} {help}");
    let _ = writeln!(w, "# TYPE {name} {kind}");
}

fn sample(w: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    w.push_str(name);
    if !labels.is_empty() {
        w.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                w.push(',');
            }
            w.push_str(k);
            w.push_str("=\"");
            escape_label(w, v);
            w.push('"');
        }
        w.push('}');
    }
    let _ = writeln!(w, " {value}");
}

/// Label values escape backslash, double quote and line feed.
fn escape_label(w: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => w.push_str("\\\\"),
            '"' => w.push_str("\\\""),
            '\n' => w.push_str("\\n"),
            c => w.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kafka_protocol::messages::ApiKey;

    use super::*;
    use crate::metrics::{BrokerMetrics, LagSnapshot};

    fn lines(text: &str) -> Vec<&str> {
        text.lines().collect()
    }

    #[test]
    fn renders_every_family_with_help_and_type() {
        let m = BrokerMetrics::default();
        m.record_append("orders", 1234, 10);
        m.record_request(ApiKey::Produce, Duration::from_millis(2));
        m.record_request(ApiKey::Fetch, Duration::from_millis(700));
        let mut s = m.snapshot();
        s.partition_count = 1;
        s.under_replicated = 1;
        s.offline_partitions = 2;
        s.active_controller = 1;
        s.isr_shrinks = 4;
        s.isr_expands = 3;
        s.logs.push(LogSnapshot {
            topic: "orders".into(),
            partition: 0,
            size: 2048,
            log_start_offset: 3,
            log_end_offset: 10,
        });
        s.lag.push(LagSnapshot {
            group: "g".into(),
            topic: "orders".into(),
            partition: 0,
            lag: 4,
        });
        let text = render(&s);
        let l = lines(&text);
        for expected in [
            "# TYPE kafka_server_brokertopicmetrics_bytesin_total counter",
            "kafka_server_brokertopicmetrics_bytesin_total{topic=\"orders\"} 1234",
            "kafka_server_brokertopicmetrics_bytesout_total{topic=\"orders\"} 0",
            "kafka_server_brokertopicmetrics_messagesin_total{topic=\"orders\"} 10",
            "kafka_network_requestmetrics_requests_total{request=\"Produce\"} 1",
            "kafka_network_requestmetrics_requests_total{request=\"Metadata\"} 0",
            "# TYPE kafka_network_requestmetrics_totaltimems histogram",
            "kafka_network_requestmetrics_totaltimems_bucket{request=\"Produce\",le=\"1\"} 0",
            "kafka_network_requestmetrics_totaltimems_bucket{request=\"Produce\",le=\"2.5\"} 1",
            "kafka_network_requestmetrics_totaltimems_bucket{request=\"Produce\",le=\"+Inf\"} 1",
            "kafka_network_requestmetrics_totaltimems_sum{request=\"Produce\"} 2",
            "kafka_network_requestmetrics_totaltimems_count{request=\"Produce\"} 1",
            "kafka_network_requestmetrics_totaltimems_bucket{request=\"Fetch\",le=\"500\"} 0",
            "kafka_network_requestmetrics_totaltimems_bucket{request=\"Fetch\",le=\"1000\"} 1",
            "kafka_server_delayedoperationpurgatory_purgatorysize{delayedOperation=\"Produce\"} 0",
            "kafka_server_delayedoperationpurgatory_purgatorysize{delayedOperation=\"Fetch\"} 0",
            "kafka_server_socketservermetrics_connection_count 0",
            "kafka_server_replicamanager_partitioncount 1",
            "kafka_server_replicamanager_underreplicatedpartitions 1",
            "kafka_controller_kafkacontroller_offlinepartitionscount 2",
            "kafka_controller_kafkacontroller_activecontrollercount 1",
            "kafka_server_replicamanager_isrshrinks_total 4",
            "kafka_server_replicamanager_isrexpands_total 3",
            "kafka_log_log_size{topic=\"orders\",partition=\"0\"} 2048",
            "kafka_log_log_logstartoffset{topic=\"orders\",partition=\"0\"} 3",
            "kafka_log_log_logendoffset{topic=\"orders\",partition=\"0\"} 10",
            "# TYPE kafka_consumergroup_lag gauge",
            "kafka_consumergroup_lag{group=\"g\",topic=\"orders\",partition=\"0\"} 4",
        ] {
            assert!(
                l.contains(&expected),
                "missing line {expected:?} in\n{text}"
            );
        }
        // Every sample belongs to a family announced just before it, and every family has HELP.
        let mut current: Option<&str> = None;
        for line in &l {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                current = rest.split(' ').next();
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let family = current.expect("sample before any TYPE");
                assert!(
                    name == family
                        || name
                            .strip_prefix(family)
                            .is_some_and(|s| s.starts_with('_')),
                    "{name} outside family {family}"
                );
                let value = line.rsplit(' ').next().unwrap();
                assert!(value.parse::<f64>().is_ok(), "bad value in {line:?}");
            }
        }
        assert_eq!(
            l.iter().filter(|s| s.starts_with("# HELP")).count(),
            l.iter().filter(|s| s.starts_with("# TYPE")).count()
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let mut s = BrokerMetrics::default().snapshot();
        s.lag.push(LagSnapshot {
            group: "a\"b\\c\nd".into(),
            topic: "t".into(),
            partition: 2,
            lag: 0,
        });
        let text = render(&s);
        assert!(text.contains(
            "kafka_consumergroup_lag{group=\"a\\\"b\\\\c\\nd\",topic=\"t\",partition=\"2\"} 0\n"
        ));
    }
}
