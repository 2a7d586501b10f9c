//! What the arcana binaries and their probe (`arcana-healthcheck`) must agree on, kept in this
//! std-only crate so the probe stays free of dependencies: each binary's default ops address.

/// The default ops listener (`ARCANA_METRICS_ADDR`: `/metrics`, `/health/*`) of each binary,
/// loopback and one port per binary (as Prometheus exporters have), so the layers run side by
/// side on one host with nothing set.
pub const DEFAULT_OPS_ADDRS: [(&str, &str); 6] = [
    ("arcana", "127.0.0.1:9100"),
    ("arcana-gateway", "127.0.0.1:9101"),
    ("arcana-service", "127.0.0.1:9102"),
    ("arcana-repository", "127.0.0.1:9103"),
    ("arcana-auth-service", "127.0.0.1:9104"),
    ("arcana-user-service", "127.0.0.1:9105"),
];

/// The default ops address of `binary` (its executable's name), if it is an arcana binary.
pub fn default_ops_addr(binary: &str) -> Option<&'static str> {
    DEFAULT_OPS_ADDRS
        .iter()
        .find(|(name, _)| *name == binary)
        .map(|(_, addr)| *addr)
}

/// The port of `binary`'s default ops address.
pub fn default_ops_port(binary: &str) -> Option<u16> {
    default_ops_addr(binary)?.rsplit_once(':')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_binary_has_its_own_loopback_port() {
        let mut ports: Vec<u16> = DEFAULT_OPS_ADDRS
            .iter()
            .map(|(name, addr)| {
                let addr: std::net::SocketAddr = addr.parse().unwrap();
                assert!(addr.ip().is_loopback(), "{name}");
                assert_eq!(default_ops_port(name), Some(addr.port()));
                addr.port()
            })
            .collect();
        assert_eq!(default_ops_port("arcana"), Some(9100));
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), DEFAULT_OPS_ADDRS.len(), "a port is shared");
        assert_eq!(default_ops_addr("arcana-healthcheck"), None);
    }
}
