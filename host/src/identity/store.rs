//! The identity on disk: one PEM file holding the private key (PKCS#8) and the self-signed
//! certificate, readable by its owner only, in a folder only its owner can enter.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};

use super::PeerId;

/// The file, inside the identity folder.
pub const IDENTITY_FILE: &str = "identity.pem";

/// A host's certificate and key.
#[derive(Clone)]
pub struct Identity {
    certificate: Vec<u8>,
    key: Vec<u8>,
    id: PeerId,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Identity")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why an identity could not be made or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// `create` found one already.
    #[error("{0} exists already: this host has an identity (`p2phost id` shows it)")]
    Exists(PathBuf),
    /// `load` found none.
    #[error("{0} does not exist: run `p2phost init` to create this host's identity")]
    Missing(PathBuf),
    /// Others may read the key.
    #[error(
        "{path} can be read by other users (mode {mode:o}): the key must be private; run `chmod 600 {path}`"
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is not what `create` writes.
    #[error("{path} is not a p2phost identity: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },
    /// The key could not be generated.
    #[error("cannot generate a key: {0}")]
    Generate(String),
    /// Reading or writing failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> IdentityError {
    move |source| IdentityError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

impl Identity {
    /// Makes a new identity in `dir` (created, owner-only), refusing to replace one.
    pub fn create(dir: &Path) -> Result<Self, IdentityError> {
        let path = dir.join(IDENTITY_FILE);
        if path.exists() {
            return Err(IdentityError::Exists(path));
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error("cannot create", dir))?;
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| IdentityError::Generate(e.to_string()))?;
        let mut params = rcgen::CertificateParams::new(vec!["p2phost".to_owned()])
            .map_err(|e| IdentityError::Generate(e.to_string()))?;
        // Peers pin the certificate itself: its dates mean nothing, so it never expires.
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(4000, 1, 1);
        let certificate = params
            .self_signed(&key)
            .map_err(|e| IdentityError::Generate(e.to_string()))?;
        let pem = format!("{}{}", key.serialize_pem(), certificate.pem());

        // Written under a temporary name with mode 0600 from the start, synced, then linked to
        // its final name, which fails rather than replace a file that appeared meanwhile.
        let temporary = dir.join(format!(".{IDENTITY_FILE}.{}.tmp", std::process::id()));
        let write = || -> io::Result<()> {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temporary)?;
            file.write_all(pem.as_bytes())?;
            file.sync_all()
        };
        let written = write().map_err(io_error("cannot write", &temporary));
        let linked = written.and_then(|()| match fs::hard_link(&temporary, &path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(IdentityError::Exists(path.clone()))
            }
            Err(e) => Err(io_error("cannot write", &path)(e)),
        });
        let _ = fs::remove_file(&temporary);
        linked?;
        Self::load(dir)
    }

    /// Reads the identity in `dir`.
    pub fn load(dir: &Path) -> Result<Self, IdentityError> {
        let path = dir.join(IDENTITY_FILE);
        let meta = match fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(IdentityError::Missing(path));
            }
            Err(e) => return Err(io_error("cannot read", &path)(e)),
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::Exposed { path, mode });
        }
        let pem = fs::read(&path).map_err(io_error("cannot read", &path))?;
        let invalid = |reason: &str| IdentityError::Invalid {
            path: path.clone(),
            reason: reason.to_owned(),
        };
        let key = PrivatePkcs8KeyDer::from_pem_slice(&pem)
            .map_err(|_| invalid("no PKCS#8 private key in it"))?;
        let certificate =
            CertificateDer::from_pem_slice(&pem).map_err(|_| invalid("no certificate in it"))?;
        // The key must be the certificate's: a mismatched pair would fail every handshake.
        let pair = rcgen::KeyPair::try_from(key.secret_pkcs8_der())
            .map_err(|_| invalid("its private key is not an ECDSA P-256 key"))?;
        let public_in_cert = subject_public_key(&certificate)
            .ok_or_else(|| invalid("its certificate cannot be read"))?;
        if pair.public_key_raw() != public_in_cert {
            return Err(invalid("the key does not belong to the certificate"));
        }
        Ok(Self {
            id: PeerId::of_certificate(&certificate),
            certificate: certificate.to_vec(),
            key: key.secret_pkcs8_der().to_vec(),
        })
    }

    /// This host's peer id.
    pub fn id(&self) -> PeerId {
        self.id
    }

    /// The certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate
    }

    /// The private key, PKCS#8 DER.
    pub fn key_pkcs8_der(&self) -> &[u8] {
        &self.key
    }
}

/// The raw public key (an uncompressed P-256 point) inside a certificate's
/// SubjectPublicKeyInfo: found as the BIT STRING that follows the P-256 curve OID.
fn subject_public_key(certificate: &[u8]) -> Option<&[u8]> {
    // OID 1.2.840.10045.3.1.7 (prime256v1), then BIT STRING of 66 bytes: 0x03 0x42 0x00 0x04 …
    const CURVE: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let at = certificate
        .windows(CURVE.len())
        .position(|window| window == CURVE)?;
    let rest = certificate.get(at + CURVE.len()..)?;
    match rest {
        [0x03, 0x42, 0x00, point @ ..] if point.len() >= 65 && point[0] == 0x04 => point.get(..65),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_then_load_gives_the_same_id_and_a_private_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let home = dir.path().join("state");
        let made = Identity::create(&home).unwrap_or_else(|e| panic!("{e}"));
        let loaded = Identity::load(&home).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(made.id(), loaded.id());
        assert_eq!(made.id(), PeerId::of_certificate(loaded.certificate_der()));
        let file_mode = fs::metadata(home.join(IDENTITY_FILE))
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or_default();
        assert_eq!(file_mode, 0o600);
        let dir_mode = fs::metadata(&home)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or_default();
        assert_eq!(dir_mode, 0o700);
        // Nothing left behind but the file.
        let names: Vec<_> = fs::read_dir(&home)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert_eq!(names, [IDENTITY_FILE]);
        // Two hosts, two ids.
        let other = Identity::create(&dir.path().join("other")).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(other.id(), made.id());
        assert!(!format!("{made:?}").contains("PRIVATE"));
    }

    #[test]
    fn an_existing_identity_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let first = Identity::create(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let again = Identity::create(dir.path());
        assert!(matches!(again, Err(IdentityError::Exists(_))), "{again:?}");
        let loaded = Identity::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.id(), first.id());
    }

    #[test]
    fn missing_exposed_and_broken_files_are_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let err = Identity::load(dir.path()).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("run `p2phost init`")),
            "{err:?}"
        );

        Identity::create(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join(IDENTITY_FILE);
        let set_mode = |mode| fs::set_permissions(&path, fs::Permissions::from_mode(mode));
        set_mode(0o644).unwrap_or_else(|e| panic!("{e}"));
        let err = Identity::load(dir.path()).err().map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains("chmod 600")),
            "{err:?}"
        );
        set_mode(0o600).unwrap_or_else(|e| panic!("{e}"));

        let pem = fs::read_to_string(&path).unwrap_or_default();
        let cert_only = &pem[pem.find("-----BEGIN CERTIFICATE").unwrap_or(0)..];
        fs::write(&path, cert_only).unwrap_or_else(|e| panic!("{e}"));
        let err = Identity::load(dir.path()).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("no PKCS#8 private key")),
            "{err:?}"
        );

        // Another host's key with this certificate.
        let other = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        Identity::create(other.path()).unwrap_or_else(|e| panic!("{e}"));
        let other_pem = fs::read_to_string(other.path().join(IDENTITY_FILE)).unwrap_or_default();
        let other_key = &other_pem[..other_pem.find("-----BEGIN CERTIFICATE").unwrap_or(0)];
        fs::write(&path, format!("{other_key}{cert_only}")).unwrap_or_else(|e| panic!("{e}"));
        let err = Identity::load(dir.path()).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("does not belong")),
            "{err:?}"
        );
    }
}
