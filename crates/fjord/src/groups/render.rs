//! What `fjord groups` knows about a group, the rows it prints, and how they
//! are printed: Kafka-style aligned tables or JSON.
//!
//! Everything here is pure (no I/O besides building strings), so the row
//! building and the formatting are unit-tested without a cluster.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// A group member as DescribeGroups reports it, with its decoded assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct MemberDesc {
    pub(crate) consumer_id: String,
    pub(crate) host: String,
    pub(crate) client_id: String,
    /// Assigned (topic, partition)s; empty when nothing is assigned or the
    /// group does not use the consumer protocol.
    pub(crate) assignment: Vec<(String, i32)>,
}

/// A group as ListGroups/DescribeGroups report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupDesc {
    pub(crate) name: String,
    /// Kafka's state name (Stable, Empty, PreparingRebalance, ...), or
    /// `Dead` for a group the cluster does not know.
    pub(crate) state: String,
    pub(crate) protocol_type: String,
    /// The assignment strategy (e.g. `range`), empty when none.
    pub(crate) protocol: String,
    pub(crate) members: Vec<MemberDesc>,
}

/// One row of `--describe` (offsets view): a partition, or a member without
/// partitions (then topic and partition are absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct OffsetRow {
    pub(crate) topic: Option<String>,
    pub(crate) partition: Option<i32>,
    pub(crate) current_offset: Option<i64>,
    pub(crate) log_end_offset: Option<i64>,
    pub(crate) lag: Option<i64>,
    pub(crate) consumer_id: Option<String>,
    pub(crate) host: Option<String>,
    pub(crate) client_id: Option<String>,
}

/// Lag as Kafka's tool computes it: log end minus committed offset, absent
/// when either is unknown.
pub(crate) fn lag(committed: Option<i64>, log_end: Option<i64>) -> Option<i64> {
    Some(log_end? - committed?)
}

/// Builds the offsets view of one group: every partition that is assigned
/// to a member or has a committed offset, ordered by topic and partition,
/// then one row per member without partitions.
pub(crate) fn offset_rows(
    group: &GroupDesc,
    committed: &BTreeMap<(String, i32), i64>,
    log_end: &BTreeMap<(String, i32), i64>,
) -> Vec<OffsetRow> {
    let mut owner: BTreeMap<(String, i32), &MemberDesc> = BTreeMap::new();
    for member in &group.members {
        for tp in &member.assignment {
            owner.entry(tp.clone()).or_insert(member);
        }
    }
    let partitions: BTreeSet<&(String, i32)> = owner.keys().chain(committed.keys()).collect();
    let mut rows: Vec<OffsetRow> = partitions
        .into_iter()
        .map(|tp| {
            let current = committed.get(tp).copied();
            let end = log_end.get(tp).copied();
            let member = owner.get(tp);
            OffsetRow {
                topic: Some(tp.0.clone()),
                partition: Some(tp.1),
                current_offset: current,
                log_end_offset: end,
                lag: lag(current, end),
                consumer_id: member.map(|m| m.consumer_id.clone()),
                host: member.map(|m| m.host.clone()),
                client_id: member.map(|m| m.client_id.clone()),
            }
        })
        .collect();
    rows.extend(
        group
            .members
            .iter()
            .filter(|m| m.assignment.is_empty())
            .map(|m| OffsetRow {
                topic: None,
                partition: None,
                current_offset: None,
                log_end_offset: None,
                lag: None,
                consumer_id: Some(m.consumer_id.clone()),
                host: Some(m.host.clone()),
                client_id: Some(m.client_id.clone()),
            }),
    );
    rows
}

/// Formats rows as Kafka's tools do: each column left-aligned and as wide as
/// its widest cell, one space between columns, the last column unpadded.
pub(crate) fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let mut out = String::new();
        let cells: Vec<&str> = cells.collect();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.push_str(cell);
                out.extend(std::iter::repeat_n(' ', pad + 1));
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(&mut headers.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// A cell: the value, or Kafka's `-` when absent.
pub(crate) fn cell<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// Kafka's describe header.
pub(crate) const OFFSET_HEADERS: &[&str] = &[
    "GROUP",
    "TOPIC",
    "PARTITION",
    "CURRENT-OFFSET",
    "LOG-END-OFFSET",
    "LAG",
    "CONSUMER-ID",
    "HOST",
    "CLIENT-ID",
];

/// The offsets table of one group.
pub(crate) fn offsets_table(group: &str, rows: &[OffsetRow]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                group.to_string(),
                cell(r.topic.as_ref()),
                cell(r.partition),
                cell(r.current_offset),
                cell(r.log_end_offset),
                cell(r.lag),
                cell(r.consumer_id.as_ref()),
                cell(r.host.as_ref()),
                cell(r.client_id.as_ref()),
            ]
        })
        .collect();
    render_table(OFFSET_HEADERS, &cells)
}

/// `t(0,1),u(3)`: a member's assignment as Kafka's `--members --verbose` prints it.
pub(crate) fn assignment_summary(assignment: &[(String, i32)]) -> String {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in assignment {
        by_topic.entry(t).or_default().push(*p);
    }
    if by_topic.is_empty() {
        return "-".to_string();
    }
    by_topic
        .into_iter()
        .map(|(t, mut ps)| {
            ps.sort_unstable();
            let list: Vec<String> = ps.iter().map(i32::to_string).collect();
            format!("{t}({})", list.join(","))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The `--members` table of one group.
pub(crate) fn members_table(group: &GroupDesc, verbose: bool) -> String {
    let mut headers = vec!["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"];
    if verbose {
        headers.push("ASSIGNMENT");
    }
    let rows: Vec<Vec<String>> = group
        .members
        .iter()
        .map(|m| {
            let mut row = vec![
                group.name.clone(),
                m.consumer_id.clone(),
                m.host.clone(),
                m.client_id.clone(),
                m.assignment.len().to_string(),
            ];
            if verbose {
                row.push(assignment_summary(&m.assignment));
            }
            row
        })
        .collect();
    render_table(&headers, &rows)
}

/// The `--describe --state` row of one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct StateRow {
    pub(crate) group: String,
    /// `host:port (id)` when known.
    pub(crate) coordinator: Option<String>,
    pub(crate) assignment_strategy: String,
    pub(crate) state: String,
    pub(crate) members: usize,
}

/// The `--describe --state` table.
pub(crate) fn state_table(rows: &[StateRow]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.group.clone(),
                cell(r.coordinator.as_ref()),
                if r.assignment_strategy.is_empty() {
                    "-".to_string()
                } else {
                    r.assignment_strategy.clone()
                },
                r.state.clone(),
                r.members.to_string(),
            ]
        })
        .collect();
    render_table(
        &[
            "GROUP",
            "COORDINATOR (ID)",
            "ASSIGNMENT-STRATEGY",
            "STATE",
            "#MEMBERS",
        ],
        &cells,
    )
}

/// One planned or committed offset of `--reset-offsets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ResetRow {
    pub(crate) group: String,
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) new_offset: i64,
}

/// The `--reset-offsets` table.
pub(crate) fn reset_table(rows: &[ResetRow]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.group.clone(),
                r.topic.clone(),
                r.partition.to_string(),
                r.new_offset.to_string(),
            ]
        })
        .collect();
    render_table(&["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"], &cells)
}

/// The `--list --state` table.
pub(crate) fn list_state_table(groups: &[(String, String)]) -> String {
    let cells: Vec<Vec<String>> = groups
        .iter()
        .map(|(g, s)| vec![g.clone(), s.clone()])
        .collect();
    render_table(&["GROUP", "STATE"], &cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, assignment: &[(&str, i32)]) -> MemberDesc {
        MemberDesc {
            consumer_id: id.into(),
            host: "/127.0.0.1".into(),
            client_id: format!("client-{id}"),
            assignment: assignment
                .iter()
                .map(|(t, p)| (t.to_string(), *p))
                .collect(),
        }
    }

    fn tp(t: &str, p: i32) -> (String, i32) {
        (t.to_string(), p)
    }

    #[test]
    fn lag_needs_both_offsets() {
        assert_eq!(lag(Some(3), Some(10)), Some(7));
        assert_eq!(lag(None, Some(10)), None);
        assert_eq!(lag(Some(3), None), None);
    }

    #[test]
    fn rows_cover_assigned_and_committed_partitions() {
        let group = GroupDesc {
            name: "g".into(),
            state: "Stable".into(),
            protocol_type: "consumer".into(),
            protocol: "range".into(),
            members: vec![
                member("m1", &[("orders", 1), ("orders", 0)]),
                member("m2", &[]),
            ],
        };
        let committed = BTreeMap::from([(tp("orders", 0), 4), (tp("audit", 2), 9)]);
        let log_end = BTreeMap::from([
            (tp("orders", 0), 10),
            (tp("orders", 1), 5),
            (tp("audit", 2), 9),
        ]);
        let rows = offset_rows(&group, &committed, &log_end);
        let brief: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.topic.clone(),
                    r.partition,
                    r.current_offset,
                    r.log_end_offset,
                    r.lag,
                    r.consumer_id.clone(),
                )
            })
            .collect();
        assert_eq!(
            brief,
            vec![
                (
                    Some("audit".into()),
                    Some(2),
                    Some(9),
                    Some(9),
                    Some(0),
                    None
                ),
                (
                    Some("orders".into()),
                    Some(0),
                    Some(4),
                    Some(10),
                    Some(6),
                    Some("m1".into())
                ),
                (
                    Some("orders".into()),
                    Some(1),
                    None,
                    Some(5),
                    None,
                    Some("m1".into())
                ),
                (None, None, None, None, None, Some("m2".into())),
            ]
        );
    }

    #[test]
    fn table_is_aligned_like_kafka() {
        let rows = vec![
            OffsetRow {
                topic: Some("orders".into()),
                partition: Some(0),
                current_offset: Some(4),
                log_end_offset: Some(10),
                lag: Some(6),
                consumer_id: Some("rdkafka-1234".into()),
                host: Some("/127.0.0.1".into()),
                client_id: Some("rdkafka".into()),
            },
            OffsetRow {
                topic: Some("orders".into()),
                partition: Some(1),
                current_offset: None,
                log_end_offset: Some(5),
                lag: None,
                consumer_id: None,
                host: None,
                client_id: None,
            },
        ];
        let text = offsets_table("my-group", &rows);
        let expected = "\
GROUP    TOPIC  PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID  HOST       CLIENT-ID
my-group orders 0         4              10             6   rdkafka-1234 /127.0.0.1 rdkafka
my-group orders 1         -              5              -   -            -          -
";
        assert_eq!(text, expected);
    }

    #[test]
    fn members_and_state_tables() {
        let group = GroupDesc {
            name: "g".into(),
            state: "Stable".into(),
            protocol_type: "consumer".into(),
            protocol: "range".into(),
            members: vec![member("m1", &[("b", 1), ("a", 2), ("b", 0)])],
        };
        assert_eq!(
            members_table(&group, true),
            "GROUP CONSUMER-ID HOST       CLIENT-ID #PARTITIONS ASSIGNMENT\n\
             g     m1          /127.0.0.1 client-m1 3           a(2),b(0,1)\n"
        );
        assert_eq!(assignment_summary(&[]), "-");
        let text = state_table(&[StateRow {
            group: "g".into(),
            coordinator: Some("127.0.0.1:9092 (1)".into()),
            assignment_strategy: String::new(),
            state: "Empty".into(),
            members: 0,
        }]);
        assert_eq!(
            text,
            "GROUP COORDINATOR (ID)   ASSIGNMENT-STRATEGY STATE #MEMBERS\n\
             g     127.0.0.1:9092 (1) -                   Empty 0\n"
        );
    }

    #[test]
    fn reset_and_list_tables() {
        let text = reset_table(&[ResetRow {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
            new_offset: 12,
        }]);
        assert_eq!(
            text,
            "GROUP TOPIC PARTITION NEW-OFFSET\ng     t     0         12\n"
        );
        assert_eq!(
            list_state_table(&[("alpha".into(), "Stable".into())]),
            "GROUP STATE\nalpha Stable\n"
        );
        // No rows: the header alone.
        assert_eq!(render_table(&["A", "B"], &[]), "A B\n");
    }
}
