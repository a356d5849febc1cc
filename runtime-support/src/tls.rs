//! TLS for client connections (`client_tls_cert_file`,
//! `client_tls_key_file`): loading the certificate and key into a rustls
//! server configuration at start, and telling a TLS connection from a plain
//! one on the shared client port.
//!
//! Both runtimes accept TLS and plain connections on the one client port:
//! the first byte of a TLS connection is a handshake record (content type
//! 22, RFC 8446 §5.1), which no HTTP request (`GET ...`) starts with. So
//! existing `ws://` clients and fabric peers keep working when an operator
//! turns TLS on, and `client_tls_required` (decided by the node) closes the
//! plain client connections once every client has moved to `wss://`.

use std::path::Path;
use std::sync::Arc;

use mpreg_core::Settings;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// The first byte of every TLS connection: a handshake record.
pub const HANDSHAKE_RECORD: u8 = 0x16;

/// Why the TLS files could not be used. The node does not start: an
/// operator who asked for TLS must not get a plain-only node silently.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM item.
    #[error("invalid setting `{setting}` ({path}): {problem}")]
    File {
        /// `client_tls_cert_file` or `client_tls_key_file`.
        setting: &'static str,
        /// The path as configured.
        path: String,
        /// What is wrong with it.
        problem: String,
    },
    /// rustls refused the pair (the key does not belong to the certificate,
    /// an unsupported key type, ...).
    #[error("client_tls_cert_file and client_tls_key_file cannot be used together: {0}")]
    Pair(rustls::Error),
}

/// The rustls server configuration for client connections, or `None` when
/// TLS is not configured.
pub fn server_config(settings: &Settings) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    let (Some(cert), Some(key)) = (
        settings.client_tls_cert_file.as_deref(),
        settings.client_tls_key_file.as_deref(),
    ) else {
        // The settings check makes the files a pair; one alone is unset.
        return Ok(None);
    };
    let chain = load_chain(cert)?;
    let key = load_key(key)?;
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Pair)?;
    // WebSocket upgrades and the monitoring GETs are HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

fn file_error(setting: &'static str, path: &str, problem: impl ToString) -> TlsError {
    TlsError::File {
        setting,
        path: path.to_string(),
        problem: problem.to_string(),
    }
}

fn load_chain(path: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    const SETTING: &str = "client_tls_cert_file";
    let bytes = read(SETTING, path)?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(SETTING, path, format!("not valid PEM: {e}")))?;
    if chain.is_empty() {
        return Err(file_error(
            SETTING,
            path,
            "holds no `BEGIN CERTIFICATE` block",
        ));
    }
    Ok(chain)
}

fn load_key(path: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    const SETTING: &str = "client_tls_key_file";
    let bytes = read(SETTING, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        file_error(
            SETTING,
            path,
            format!("no PKCS#8, PKCS#1 or SEC1 private key in PEM form ({e})"),
        )
    })
}

fn read(setting: &'static str, path: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(Path::new(path)).map_err(|e| file_error(setting, path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(cert: &str, key: &str) -> Settings {
        Settings {
            client_tls_cert_file: Some(cert.to_string()),
            client_tls_key_file: Some(key.to_string()),
            ..Settings::default()
        }
    }

    fn write(dir: &Path, name: &str, text: &str) -> String {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("temp file");
        path.display().to_string()
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("mpreg-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn no_files_no_tls() {
        assert!(server_config(&Settings::default())
            .expect("nothing to load")
            .is_none());
    }

    #[test]
    fn a_generated_pair_loads() {
        let dir = temp_dir("pair");
        let pair = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("rcgen");
        let cert = write(&dir, "cert.pem", &pair.cert.pem());
        let key = write(&dir, "key.pem", &pair.signing_key.serialize_pem());
        let config = server_config(&settings(&cert, &key))
            .expect("loads")
            .expect("configured");
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn bad_files_name_the_setting_and_the_path() {
        let dir = temp_dir("bad");
        let pair = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("rcgen");
        let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("rcgen");
        let cert = write(&dir, "cert.pem", &pair.cert.pem());
        let key = write(&dir, "key.pem", &pair.signing_key.serialize_pem());
        let wrong_key = write(&dir, "other.pem", &other.signing_key.serialize_pem());
        let junk = write(&dir, "junk.pem", "not a pem file\n");
        let missing = dir.join("missing.pem").display().to_string();

        let e = server_config(&settings(&missing, &key)).expect_err("missing cert");
        assert!(e.to_string().contains("client_tls_cert_file"), "{e}");
        assert!(e.to_string().contains("missing.pem"), "{e}");
        let e = server_config(&settings(&junk, &key)).expect_err("no certificate");
        assert!(e.to_string().contains("BEGIN CERTIFICATE"), "{e}");
        let e = server_config(&settings(&cert, &junk)).expect_err("no key");
        assert!(e.to_string().contains("client_tls_key_file"), "{e}");
        let e = server_config(&settings(&cert, &cert)).expect_err("a certificate is no key");
        assert!(e.to_string().contains("client_tls_key_file"), "{e}");
        let e = server_config(&settings(&cert, &wrong_key)).expect_err("mismatched pair");
        assert!(matches!(e, TlsError::Pair(_)), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
