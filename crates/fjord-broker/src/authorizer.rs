//! The single authorization check every handler consults before acting.
//!
//! Until ACLs exist the authorizer allows everything, but the call sites are already in place so
//! that adding ACLs changes this file, not every handler.

/// Who is asking: the listener a connection arrived on and its authenticated principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Listener name from `listeners`.
    pub listener: String,
    /// Security protocol of that listener.
    pub security_protocol: String,
    /// Authenticated principal; `User:ANONYMOUS` on PLAINTEXT.
    pub principal: String,
    /// The client's address, shown as a group member's host.
    pub client_host: String,
}

impl Session {
    /// A PLAINTEXT session, which has no authentication.
    pub fn plaintext(listener: &str, peer: std::net::SocketAddr) -> Session {
        Session {
            listener: listener.to_string(),
            security_protocol: "PLAINTEXT".to_string(),
            principal: "User:ANONYMOUS".to_string(),
            // Kafka prints hosts as InetAddress.toString() does.
            client_host: format!("/{}", peer.ip()),
        }
    }
}

/// Kafka's ACL operations that handlers ask about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Produce.
    Write,
    /// Fetch, ListOffsets, Metadata of a topic.
    Read,
    /// Metadata and DescribeConfigs.
    Describe,
    /// CreateTopics (and auto-creation).
    Create,
    /// DeleteTopics.
    Delete,
    /// DescribeConfigs.
    DescribeConfigs,
    /// Changing topic partitions and settings.
    Alter,
    /// AlterConfigs.
    AlterConfigs,
    /// Broker-to-broker actions.
    ClusterAction,
    /// Idempotent produce.
    IdempotentWrite,
}

impl Authorizer {
    /// Shorthand for a group-scoped check.
    pub fn authorize_group(&self, session: &Session, op: Operation, group: &str) -> bool {
        self.authorize(session, op, Resource::Group(group))
    }
}

/// What an operation applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// A topic by name.
    Topic(&'a str),
    /// A consumer group by id.
    Group(&'a str),
    /// The cluster itself.
    Cluster,
    /// A producer's `transactional.id`.
    TransactionalId(&'a str),
}

/// Decides whether a session may perform an operation on a resource.
#[derive(Debug, Default)]
pub struct Authorizer;

impl Authorizer {
    /// Allows everything until ACLs are implemented; see the module docs.
    pub fn authorize(&self, _session: &Session, _op: Operation, _resource: Resource<'_>) -> bool {
        true
    }
}
