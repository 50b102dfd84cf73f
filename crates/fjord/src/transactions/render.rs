//! What `fjord transactions` prints: one row type per subcommand (serialized
//! as is for `--output json`) and Kafka's table layout for the default text.

use serde::Serialize;

/// Formats rows as `kafka-transactions.sh` does: each cell left-aligned and
/// padded to its column's widest cell, columns separated by a tab (Kafka
/// also ends every line with one; here trailing whitespace is trimmed).
pub(crate) fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                out.push('\t');
            }
            out.push_str(cell);
            let pad = widths
                .get(i)
                .map_or(0, |w| w.saturating_sub(cell.chars().count()));
            out.extend(std::iter::repeat_n(' ', pad));
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// Kafka prints an absent value as `None`.
fn optional<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "None".to_string(), |v| v.to_string())
}

/// One row of `list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ListedTransaction {
    pub(crate) transactional_id: String,
    /// The broker that answered, i.e. the transaction's coordinator.
    pub(crate) coordinator: i32,
    pub(crate) producer_id: i64,
    pub(crate) transaction_state: String,
}

pub(crate) fn list_table(rows: &[ListedTransaction]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.transactional_id.clone(),
                r.coordinator.to_string(),
                r.producer_id.to_string(),
                r.transaction_state.clone(),
            ]
        })
        .collect();
    render_table(
        &[
            "TransactionalId",
            "Coordinator",
            "ProducerId",
            "TransactionState",
        ],
        &cells,
    )
}

/// A partition of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub(crate) struct TopicPartition {
    pub(crate) topic: String,
    pub(crate) partition: i32,
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// The one row of `describe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct DescribedTransaction {
    pub(crate) coordinator_id: i32,
    pub(crate) transactional_id: String,
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i16,
    pub(crate) transaction_state: String,
    pub(crate) transaction_timeout_ms: i32,
    /// `None` when no transaction is open.
    pub(crate) current_transaction_start_time_ms: Option<i64>,
    /// How long the open transaction has run, measured now.
    pub(crate) transaction_duration_ms: Option<i64>,
    pub(crate) topic_partitions: Vec<TopicPartition>,
}

pub(crate) fn describe_table(d: &DescribedTransaction) -> String {
    let partitions: Vec<String> = d.topic_partitions.iter().map(|tp| tp.to_string()).collect();
    render_table(
        &[
            "CoordinatorId",
            "TransactionalId",
            "ProducerId",
            "ProducerEpoch",
            "TransactionState",
            "TransactionTimeoutMs",
            "CurrentTransactionStartTimeMs",
            "TransactionDurationMs",
            "TopicPartitions",
        ],
        &[vec![
            d.coordinator_id.to_string(),
            d.transactional_id.clone(),
            d.producer_id.to_string(),
            d.producer_epoch.to_string(),
            d.transaction_state.clone(),
            d.transaction_timeout_ms.to_string(),
            optional(d.current_transaction_start_time_ms),
            optional(d.transaction_duration_ms),
            partitions.join(","),
        ]],
    )
}

/// One row of `describe-producers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ProducerRow {
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i32,
    /// `None` when the partition never saw a marker from a coordinator.
    pub(crate) latest_coordinator_epoch: Option<i32>,
    pub(crate) last_sequence: i32,
    pub(crate) last_timestamp: i64,
    /// Offset of the first record of the open transaction, if one is open.
    pub(crate) current_transaction_start_offset: Option<i64>,
}

pub(crate) fn producers_table(rows: &[ProducerRow]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.producer_id.to_string(),
                r.producer_epoch.to_string(),
                optional(r.latest_coordinator_epoch),
                r.last_sequence.to_string(),
                r.last_timestamp.to_string(),
                optional(r.current_transaction_start_offset),
            ]
        })
        .collect();
    render_table(
        &[
            "ProducerId",
            "ProducerEpoch",
            "LatestCoordinatorEpoch",
            "LastSequence",
            "LastTimestamp",
            "CurrentTransactionStartOffset",
        ],
        &cells,
    )
}

/// What `abort` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct AbortedTransaction {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i16,
    pub(crate) coordinator_epoch: i32,
    /// The start offset the transaction was found by, if it was.
    pub(crate) start_offset: Option<i64>,
}

pub(crate) fn abort_line(a: &AbortedTransaction) -> String {
    let started = a
        .start_offset
        .map(|o| format!(" (started at offset {o})"))
        .unwrap_or_default();
    format!(
        "Aborted the transaction of producer {} (epoch {}, coordinator epoch {}) on {}-{}{started}.\n",
        a.producer_id, a.producer_epoch, a.coordinator_epoch, a.topic, a.partition
    )
}

/// One row of `find-hanging`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct HangingTransaction {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i32,
    pub(crate) coordinator_epoch: Option<i32>,
    pub(crate) start_offset: i64,
    pub(crate) last_timestamp: i64,
    /// Whole minutes since the last write of the producer.
    pub(crate) duration_min: i64,
}

pub(crate) fn hanging_table(rows: &[HangingTransaction]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.topic.clone(),
                r.partition.to_string(),
                r.producer_id.to_string(),
                r.producer_epoch.to_string(),
                optional(r.coordinator_epoch),
                r.start_offset.to_string(),
                r.last_timestamp.to_string(),
                r.duration_min.to_string(),
            ]
        })
        .collect();
    render_table(
        &[
            "Topic",
            "Partition",
            "ProducerId",
            "ProducerEpoch",
            "CoordinatorEpoch",
            "StartOffset",
            "LastTimestamp",
            "Duration(min)",
        ],
        &cells,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_columns_and_separate_them_with_tabs() {
        let table = render_table(
            &["A", "Bee", "C"],
            &[
                vec!["long-value".into(), "1".into(), "x".into()],
                vec!["s".into(), "22".into(), "".into()],
            ],
        );
        assert_eq!(
            table,
            "A         \tBee\tC\nlong-value\t1  \tx\ns         \t22\n"
        );
        assert_eq!(render_table(&["A", "B"], &[]), "A\tB\n");
    }

    #[test]
    fn list_and_producers_tables() {
        let listed = list_table(&[ListedTransaction {
            transactional_id: "app-1".into(),
            coordinator: 1,
            producer_id: 7,
            transaction_state: "Ongoing".into(),
        }]);
        assert_eq!(
            listed,
            "TransactionalId\tCoordinator\tProducerId\tTransactionState\n\
             app-1          \t1          \t7         \tOngoing\n"
        );
        let producers = producers_table(&[ProducerRow {
            producer_id: 7,
            producer_epoch: 0,
            latest_coordinator_epoch: None,
            last_sequence: 9,
            last_timestamp: 1_700_000_000_000,
            current_transaction_start_offset: Some(3),
        }]);
        let lines: Vec<Vec<&str>> = producers
            .lines()
            .map(|l| l.split('\t').map(str::trim).collect())
            .collect();
        assert_eq!(lines[1], ["7", "0", "None", "9", "1700000000000", "3"]);
    }

    #[test]
    fn describe_row_prints_none_and_partitions() {
        let d = DescribedTransaction {
            coordinator_id: 1,
            transactional_id: "app".into(),
            producer_id: 4,
            producer_epoch: 2,
            transaction_state: "Empty".into(),
            transaction_timeout_ms: 60_000,
            current_transaction_start_time_ms: None,
            transaction_duration_ms: None,
            topic_partitions: vec![
                TopicPartition {
                    topic: "t".into(),
                    partition: 0,
                },
                TopicPartition {
                    topic: "t".into(),
                    partition: 2,
                },
            ],
        };
        let table = describe_table(&d);
        let row: Vec<&str> = table
            .lines()
            .nth(1)
            .unwrap()
            .split('\t')
            .map(str::trim)
            .collect();
        assert_eq!(
            row,
            ["1", "app", "4", "2", "Empty", "60000", "None", "None", "t-0,t-2"]
        );
        let json: serde_json::Value = serde_json::to_value(&d).unwrap();
        assert_eq!(
            json["current_transaction_start_time_ms"],
            serde_json::Value::Null
        );
        assert_eq!(json["topic_partitions"][1]["partition"], 2);
    }

    #[test]
    fn abort_line_names_the_producer_and_partition() {
        let a = AbortedTransaction {
            topic: "t".into(),
            partition: 1,
            producer_id: 9,
            producer_epoch: 0,
            coordinator_epoch: 0,
            start_offset: Some(12),
        };
        assert_eq!(
            abort_line(&a),
            "Aborted the transaction of producer 9 (epoch 0, coordinator epoch 0) on t-1 (started at offset 12).\n"
        );
    }
}
