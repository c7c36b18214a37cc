//! TLS with libpq's meaning, on rustls with the `ring` provider.
//!
//! The Rust driver's own `require` verifies like libpq's `verify-full` and it knows neither
//! `verify-ca` nor `sslrootcert`; operators paste the URL they give psql, so the words here mean
//! what libpq makes them mean: `prefer` and `require` encrypt without checking (unless a root
//! certificate is present, the legacy rule), `verify-ca` checks the chain, `verify-full` the chain
//! and the host name. The certificate checks are rustls verifiers chosen from the mode.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// libpq's `sslmode`, from weakest to strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// Plaintext first; TLS only if the server refuses plaintext.
    Allow,
    /// TLS if the server offers it, else plaintext (libpq's default).
    Prefer,
    /// TLS or fail; the certificate is not checked (unless a root certificate is present).
    Require,
    /// TLS, and the server certificate must chain to a trusted CA.
    VerifyCa,
    /// TLS, a trusted chain, and a certificate name matching the host.
    VerifyFull,
}

impl SslMode {
    /// Parses a libpq `sslmode` value (case-insensitive).
    pub fn parse(value: &str) -> Option<SslMode> {
        Some(match value.trim().to_ascii_lowercase().as_str() {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where trusted CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file of CA certificates.
    File(PathBuf),
    /// The platform's certificate store (`sslrootcert=system`).
    System,
}

/// What a TLS session checks of the server certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Nothing: encrypted, but open to a man in the middle.
    None,
    /// The chain up to a trusted CA.
    Chain,
    /// The chain and the host name.
    ChainAndHost,
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verification::None => "certificate not verified",
            Verification::Chain => "certificate chain verified, host name not checked",
            Verification::ChainAndHost => "certificate chain and host name verified",
        })
    }
}

/// The TLS settings of a connection, resolved from the URL, `PGSSL*` variables and libpq's
/// defaults under `~/.postgresql/`. Holds paths only: no key material stays in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The mode.
    pub mode: SslMode,
    /// Trusted CAs; a default `~/.postgresql/root.crt` is only set here when it exists.
    pub root_cert: Option<RootCert>,
    /// Client certificate (PEM), sent when the server asks for one.
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub client_key: Option<PathBuf>,
    /// A certificate revocation list (PEM) checked with the chain.
    pub crl: Option<PathBuf>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            mode: SslMode::Prefer,
            root_cert: None,
            client_cert: None,
            client_key: None,
            crl: None,
        }
    }
}

/// A TLS setting that cannot be used: one line, naming the setting and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFileError {
    /// The libpq setting (`sslrootcert`, `sslcert`, `sslkey`, `sslcrl`).
    pub setting: &'static str,
    /// What is wrong and how to fix it.
    pub problem: String,
}

impl fmt::Display for TlsFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.problem)
    }
}

impl std::error::Error for TlsFileError {}

impl TlsSettings {
    /// What the server certificate is checked for in this mode, with libpq's legacy rule:
    /// `prefer` or `require` with a root certificate present verify the chain.
    pub fn verification(&self) -> Verification {
        match self.mode {
            SslMode::VerifyFull => Verification::ChainAndHost,
            SslMode::VerifyCa => Verification::Chain,
            SslMode::Disable => Verification::None,
            _ if self.root_cert.is_some() => Verification::Chain,
            _ => Verification::None,
        }
    }

    /// Checks every file these settings name, as libpq would before connecting: present,
    /// readable, PEM of the right kind, and a private key that only its owner can read.
    pub fn check_files(&self) -> Result<(), TlsFileError> {
        if self.mode == SslMode::Disable {
            return Ok(());
        }
        match &self.root_cert {
            Some(RootCert::File(path)) => {
                read_certs("sslrootcert", path)?;
            }
            None if self.mode >= SslMode::VerifyCa => {
                return Err(self.no_root_cert());
            }
            _ => {}
        }
        if let Some(path) = &self.crl {
            read_crls(path)?;
        }
        match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                read_certs("sslcert", cert)?;
                read_key(key)?;
            }
            (Some(_), None) => {
                return Err(TlsFileError {
                    setting: "sslkey",
                    problem: "a client certificate (sslcert) was given without its key: set sslkey to the key file".to_owned(),
                })
            }
            (None, Some(_)) => {
                return Err(TlsFileError {
                    setting: "sslcert",
                    problem: "a client key (sslkey) was given without its certificate: set sslcert to the certificate file".to_owned(),
                })
            }
            (None, None) => {}
        }
        Ok(())
    }

    /// The libpq environment that makes `pg_dump`, `pg_restore` and `psql` connect the way this
    /// tool does. Every variable is set, so nothing of the caller's environment changes it.
    pub fn child_env(&self) -> Vec<(&'static str, OsString)> {
        let mut env = vec![("PGSSLMODE", OsString::from(self.mode.as_str()))];
        // An empty value makes libpq look at ~/.postgresql/ again; a path that cannot exist
        // keeps it from finding there what this tool did not use.
        let none = || OsString::from("/nonexistent/identity-migrate-unset");
        env.push((
            "PGSSLROOTCERT",
            match &self.root_cert {
                Some(RootCert::File(p)) => p.clone().into_os_string(),
                Some(RootCert::System) => system_bundle(),
                None => none(),
            },
        ));
        env.push((
            "PGSSLCERT",
            self.client_cert
                .clone()
                .map_or_else(none, PathBuf::into_os_string),
        ));
        env.push((
            "PGSSLKEY",
            self.client_key
                .clone()
                .map_or_else(none, PathBuf::into_os_string),
        ));
        env.push((
            "PGSSLCRL",
            self.crl.clone().map_or_else(none, PathBuf::into_os_string),
        ));
        env
    }

    /// The rustls configuration for this mode.
    pub fn client_config(&self) -> Result<ClientConfig, TlsFileError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algorithms = provider.signature_verification_algorithms;
        let verifier: Arc<dyn ServerCertVerifier> = match self.verification() {
            Verification::None => Arc::new(AcceptAnyCertificate { algorithms }),
            check => {
                let roots = self.root_store()?;
                let mut builder =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone());
                if let Some(path) = &self.crl {
                    builder = builder
                        .with_crls(read_crls(path)?)
                        .allow_unknown_revocation_status();
                }
                let webpki = builder.build().map_err(|e| TlsFileError {
                    setting: "sslrootcert",
                    problem: format!("cannot build a verifier from it ({e})"),
                })?;
                Arc::new(LibpqVerifier {
                    webpki,
                    check_host: check == Verification::ChainAndHost,
                })
            }
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsFileError {
                setting: "sslmode",
                problem: format!("no TLS protocol version available ({e})"),
            })?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(read_certs("sslcert", cert)?, read_key(key)?)
                .map_err(|e| TlsFileError {
                    setting: "sslkey",
                    problem: format!(
                        "the key does not fit the client certificate ({e}): give the key of sslcert"
                    ),
                }),
            _ => Ok(builder.with_no_client_auth()),
        }
    }

    fn root_store(&self) -> Result<RootCertStore, TlsFileError> {
        let mut roots = RootCertStore::empty();
        match &self.root_cert {
            Some(RootCert::File(path)) => {
                for cert in read_certs("sslrootcert", path)? {
                    roots.add(cert).map_err(|e| TlsFileError {
                        setting: "sslrootcert",
                        problem: format!(
                            "{} holds a certificate rustls cannot use ({e})",
                            path.display()
                        ),
                    })?;
                }
            }
            Some(RootCert::System) => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err(TlsFileError {
                        setting: "sslrootcert",
                        problem: "sslrootcert=system found no CA certificate in the platform store: install ca-certificates or point sslrootcert at a CA file".to_owned(),
                    });
                }
            }
            None => return Err(self.no_root_cert()),
        }
        Ok(roots)
    }

    fn no_root_cert(&self) -> TlsFileError {
        TlsFileError {
            setting: "sslrootcert",
            problem: format!(
                "sslmode={} needs the CA that signed the server certificate, and ~/.postgresql/root.crt does not exist: set sslrootcert to a CA file (or system), or use sslmode=require",
                self.mode
            ),
        }
    }
}

/// What `sslrootcert=system` means to a child tool: libpq before 16 (Debian 12's pg_dump 15)
/// reads `system` as a file name, so it gets the platform's CA bundle file when there is one.
fn system_bundle() -> OsString {
    std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            [
                "/etc/ssl/certs/ca-certificates.crt",
                "/etc/pki/tls/certs/ca-bundle.crt",
                "/etc/ssl/cert.pem",
            ]
            .map(PathBuf::from),
        )
        .find(|path| path.is_file())
        .map_or_else(|| OsString::from("system"), PathBuf::into_os_string)
}

fn read_certs(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let unreadable = |e: &dyn fmt::Display| TlsFileError {
        setting,
        problem: format!(
            "cannot read {} ({e}): fix the path or its permissions",
            path.display()
        ),
    };
    let bytes = std::fs::read(path).map_err(|e| unreadable(&e))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsFileError {
            setting,
            problem: format!("{} is not a PEM certificate file", path.display()),
        })?;
    if certs.is_empty() {
        return Err(TlsFileError {
            setting,
            problem: format!("{} holds no PEM certificate", path.display()),
        });
    }
    Ok(certs)
}

fn read_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsFileError> {
    let bytes = std::fs::read(path).map_err(|e| TlsFileError {
        setting: "sslcrl",
        problem: format!(
            "cannot read {} ({e}): fix the path or its permissions",
            path.display()
        ),
    })?;
    CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsFileError {
            setting: "sslcrl",
            problem: format!("{} is not a PEM revocation list", path.display()),
        })
}

/// Reads a client key as libpq does: a key others may read is refused, because its secret may
/// already be out. Never quotes the file's content.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsFileError> {
    let error = |problem: String| TlsFileError {
        setting: "sslkey",
        problem,
    };
    let metadata = std::fs::metadata(path).map_err(|e| {
        error(format!(
            "cannot read {} ({e}): fix the path or its permissions",
            path.display()
        ))
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let mode = metadata.mode();
        // libpq's rule: 0600 or less when the user owns it, 0640 or less when root does.
        let too_open = if metadata.uid() == 0 {
            mode & 0o037 != 0
        } else {
            mode & 0o077 != 0
        };
        if too_open {
            return Err(error(format!(
                "private key file {} has group or world access (mode {:o}); it must be u=rw (0600) or less: chmod 600 {}",
                path.display(),
                mode & 0o777,
                path.display()
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = metadata;
    let bytes = std::fs::read(path).map_err(|e| {
        error(format!(
            "cannot read {} ({e}): fix the path or its permissions",
            path.display()
        ))
    })?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| {
        error(format!(
            "{} holds no unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1): decrypt it with openssl pkey",
            path.display()
        ))
    })
}

/// `prefer` and `require` without a root certificate: any certificate, but the handshake
/// signatures are still checked so the session key is the server's.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `verify-ca` (chain only: a name mismatch is forgiven) and `verify-full` (chain and name; a
/// certificate without subjectAltName gets an error that says why, since webpki ignores the CN).
#[derive(Debug)]
struct LibpqVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    check_host: bool,
}

/// The error of a server certificate that names its host only in the CN.
#[derive(Debug)]
pub struct CommonNameOnly;

impl fmt::Display for CommonNameOnly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the server certificate has no subjectAltName")
    }
}

impl std::error::Error for CommonNameOnly {}

impl ServerCertVerifier for LibpqVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_host => Ok(ServerCertVerified::assertion()),
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                presented,
                ..
            })) if presented.is_empty() => Err(rustls::Error::InvalidCertificate(
                CertificateError::Other(rustls::OtherError(Arc::new(CommonNameOnly))),
            )),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Finds the rustls error inside a connection error, if the failure was TLS's.
pub fn rustls_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        // io::Error's `source` skips the error it wraps; `get_ref` does not.
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(inner);
        }
        current = e.source();
    }
    None
}

/// One line saying why the server certificate was refused and which setting to change.
pub fn explain_certificate_error(
    error: &rustls::Error,
    tls: &TlsSettings,
    host: &str,
) -> Option<String> {
    let root = match &tls.root_cert {
        Some(RootCert::File(p)) => format!("sslrootcert={}", p.display()),
        Some(RootCert::System) => "sslrootcert=system".to_owned(),
        None => "sslrootcert".to_owned(),
    };
    let rustls::Error::InvalidCertificate(cert) = error else {
        return None;
    };
    Some(match cert {
        CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
            "the server certificate is not signed by a CA in {root} (sslmode={}): point sslrootcert at the CA that signed it",
            tls.mode
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => format!(
            "the server certificate has expired (sslmode={} checks its dates): renew the server certificate",
            tls.mode
        ),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => format!(
            "the server certificate is not valid yet (sslmode={}): check the clocks, or reissue it",
            tls.mode
        ),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            let names = match cert {
                CertificateError::NotValidForNameContext { presented, .. } => {
                    let names: Vec<&str> = presented
                        .iter()
                        .map(|name| name.split('"').nth(1).unwrap_or(name))
                        .collect();
                    format!(" (it names {})", names.join(", "))
                }
                _ => String::new(),
            };
            format!(
                "the server certificate is not valid for host \"{host}\"{names}, and sslmode=verify-full checks the name: connect with a name the certificate lists, or use sslmode=verify-ca"
            )
        }
        CertificateError::Other(other) if other.0.downcast_ref::<CommonNameOnly>().is_some() => format!(
            "the server certificate for host \"{host}\" has no subjectAltName, only a common name (CN), and rustls ignores the CN: reissue it with subjectAltName=DNS:{host}, or use sslmode=verify-ca"
        ),
        CertificateError::Revoked => {
            "the server certificate is revoked by sslcrl: the server needs a new certificate".to_owned()
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_libpq_mode_and_nothing_else() {
        for mode in [
            SslMode::Disable,
            SslMode::Allow,
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyCa,
            SslMode::VerifyFull,
        ] {
            assert_eq!(SslMode::parse(mode.as_str()), Some(mode));
            assert_eq!(SslMode::parse(&mode.as_str().to_uppercase()), Some(mode));
        }
        assert_eq!(SslMode::parse("bogus"), None);
        assert_eq!(SslMode::parse("verify_full"), None);
    }

    #[test]
    fn require_with_a_root_certificate_verifies_the_chain() {
        let mut tls = TlsSettings {
            mode: SslMode::Require,
            ..TlsSettings::default()
        };
        assert_eq!(tls.verification(), Verification::None);
        tls.root_cert = Some(RootCert::File("/ca.pem".into()));
        assert_eq!(tls.verification(), Verification::Chain);
        tls.mode = SslMode::VerifyFull;
        assert_eq!(tls.verification(), Verification::ChainAndHost);
        tls.mode = SslMode::Disable;
        assert_eq!(tls.verification(), Verification::None);
    }

    #[test]
    fn child_env_sets_every_variable() {
        let tls = TlsSettings {
            mode: SslMode::VerifyFull,
            root_cert: Some(RootCert::File("/ca.pem".into())),
            ..TlsSettings::default()
        };
        let env = tls.child_env();
        let names: Vec<_> = env.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "PGSSLMODE",
                "PGSSLROOTCERT",
                "PGSSLCERT",
                "PGSSLKEY",
                "PGSSLCRL"
            ]
        );
        assert_eq!(env[0].1, "verify-full");
        assert_eq!(env[1].1, "/ca.pem");
        let system = TlsSettings {
            mode: SslMode::VerifyFull,
            root_cert: Some(RootCert::System),
            ..TlsSettings::default()
        };
        let root = system.child_env()[1].1.clone();
        assert!(root == "system" || Path::new(&root).is_file(), "{root:?}");
    }

    #[test]
    fn verify_without_a_root_certificate_says_what_to_set() {
        let tls = TlsSettings {
            mode: SslMode::VerifyCa,
            ..TlsSettings::default()
        };
        let e = tls.client_config().expect_err("no root");
        assert_eq!(e.setting, "sslrootcert");
        assert!(e.to_string().contains("sslmode=require"), "{e}");
    }
}
