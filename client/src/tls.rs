//! Which servers a `wss://` connection trusts.
//!
//! By default the system's root certificates (what tokio-tungstenite's
//! rustls connector loads). A discovery cluster usually runs on a private
//! CA or a self-signed certificate instead: [`trust_ca_file`] builds a
//! configuration that trusts exactly the certificates of one PEM file.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use crate::ClientError;

/// A TLS configuration trusting only the CA (or self-signed) certificates
/// in the PEM file at `path`.
pub fn trust_ca_file(path: &str) -> Result<Arc<ClientConfig>, ClientError> {
    let problem = |reason: String| ClientError::Tls {
        path: path.to_string(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| problem(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        let cert = cert.map_err(|e| problem(format!("not valid PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| problem(format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(problem("holds no `BEGIN CERTIFICATE` block".into()));
    }
    Ok(Arc::new(
        ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// `reason` (a failed connection's error text) with a hint on what to do
/// when it is one of the certificate errors operators meet most.
pub fn with_hint(reason: String) -> String {
    let hint = if reason.contains("CaUsedAsEndEntity") {
        "the node's certificate is a CA certificate, which rustls does not accept \
         as a server certificate: issue one from the CA, or create the self-signed \
         one with `-addext basicConstraints=critical,CA:FALSE`"
    } else if reason.contains("UnknownIssuer") {
        "trust the CA that signed the node's certificate with --tls-ca-file or MPREG_TLS_CA_FILE"
    } else if reason.contains("NotValidForName") {
        "the certificate does not name the host of the URL: check its subjectAltName"
    } else if reason.contains("Expired") {
        "the node's certificate has expired"
    } else {
        return reason;
    };
    format!("{reason} ({hint})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_errors_get_a_hint_and_others_pass_through() {
        let r = with_hint("invalid peer certificate: UnknownIssuer".into());
        assert!(r.contains("--tls-ca-file"), "{r}");
        let r = with_hint("invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))".into());
        assert!(r.contains("CA:FALSE"), "{r}");
        assert_eq!(with_hint("connection refused".into()), "connection refused");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_with_the_path() {
        let path = std::env::temp_dir().join(format!("mpreg-ca-{}.pem", std::process::id()));
        std::fs::write(&path, "no pem here\n").expect("temp file");
        let shown = path.display().to_string();
        let e = trust_ca_file(&shown).expect_err("no certificate");
        assert!(
            e.to_string().contains(&shown) && e.to_string().contains("BEGIN CERTIFICATE"),
            "{e}"
        );
        let _ = std::fs::remove_file(path);
        let e = trust_ca_file("/nonexistent/ca.pem").expect_err("missing");
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }
}
