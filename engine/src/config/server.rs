//! Node identity, ports and the admin key.

use super::group::settings_group;
use super::setting::{NodeName, Port, Secret, ServerType};

settings_group! {
    /// What this node serves and where.
    pub struct ServerConfig, args ServerArgs, heading "Server" {
        /// Role of this node: prices and reports, or push to subscribers.
        server_type: ServerType = ServerType::AppReport, env = "SERVER_TYPE";
        /// Name of this node in the cluster: shown in /health, metrics and usage records.
        cluster_node: NodeName = NodeName::host(), env = "CLUSTER_NODE";
        /// HTTP/1.1 port of the price API (LPO).
        tcp_port_lpo: Port = Port(8080), env = "TCP_PORT_LPO";
        /// HTTP/1.1 port of the reports API (LRS).
        tcp_port_lrs: Port = Port(9090), env = "TCP_PORT_LRS";
        /// Health and Prometheus metrics port of the price API.
        health_port_lpo: Port = Port(8081), env = "HEALTH_PORT_LPO";
        /// Health and Prometheus metrics port of the reports API.
        health_port_lrs: Port = Port(9091), env = "HEALTH_PORT_LRS";
        /// Health and Prometheus metrics port of a WEBHOOK_SERVER node (its only listener).
        health_port_webhook: Port = Port(8083), env = "HEALTH_PORT_WEBHOOK";
        /// UDP port of the price API (text and binary v8 requests).
        udp_port_lpo: Port = Port(2679), env = "UDP_PORT_LPO";
        /// UDP port of the reports API.
        udp_port_lrs: Port = Port(2680), env = "UDP_PORT_LRS";
        /// Key required in X-Admin-Key by the /admin endpoints; unset disables them.
        admin_key: Option<Secret> = None, env = "ADMIN_KEY";
    }
}
