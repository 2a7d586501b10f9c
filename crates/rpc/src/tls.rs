//! Mutual TLS between layers (rustls), used when certificates are configured: every internal
//! server then requires a client certificate signed by the configured CA, and every client
//! verifies the server against the same CA — on top of the internal credential, never instead.
use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// PEM files of this process's certificate chain and key, and of the CA that signs every layer.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    /// Name the servers' certificates are checked against (default: the host of each URL).
    pub server_name: Option<String>,
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("reading the TLS {what} {}: {e}", path.display()))
}

impl TlsFiles {
    fn identity(&self) -> Result<Identity, String> {
        Ok(Identity::from_pem(
            read(&self.cert, "certificate")?,
            read(&self.key, "key")?,
        ))
    }

    fn ca(&self) -> Result<Certificate, String> {
        Ok(Certificate::from_pem(read(&self.ca, "CA")?))
    }

    /// Server side: present our certificate, require a client certificate from the CA.
    pub fn server(&self) -> Result<ServerTlsConfig, String> {
        Ok(ServerTlsConfig::new()
            .identity(self.identity()?)
            .client_ca_root(self.ca()?))
    }

    /// Client side: verify the server against the CA, present our certificate.
    pub fn client(&self) -> Result<ClientTlsConfig, String> {
        let mut c = ClientTlsConfig::new()
            .ca_certificate(self.ca()?)
            .identity(self.identity()?);
        if let Some(name) = &self.server_name {
            c = c.domain_name(name.clone());
        }
        Ok(c)
    }
}
