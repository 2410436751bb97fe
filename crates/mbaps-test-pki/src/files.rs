//! Writing the PKI to a directory: certificates, chains, keys, the CRL and a
//! README.txt that says what each file is for.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use crate::issue::{CA_DAYS, LEAF_DAYS, days_from};
use crate::{Credential, PkiError, RoleExtension, TestPki, standard_clients};

/// Name of the file that lists the others.
const README: &str = "README.txt";

/// One file of the PKI.
struct PkiFile {
    name: String,
    contents: Vec<u8>,
    /// A private key: written 0600 on unix.
    secret: bool,
    about: String,
}

impl PkiFile {
    fn public(name: impl Into<String>, contents: impl Into<Vec<u8>>, about: String) -> PkiFile {
        PkiFile {
            name: name.into(),
            contents: contents.into(),
            secret: false,
            about,
        }
    }
}

/// The certificate, chain and key files of a leaf, named `<stem>.pem`,
/// `<stem>-chain.pem` and `<stem>.key`.
fn leaf_files(stem: &str, who: &str, credential: &Credential, about: &str) -> [PkiFile; 3] {
    [
        PkiFile::public(
            format!("{stem}.pem"),
            credential.cert_pem.as_bytes(),
            format!("{who} certificate alone, PEM: {about}"),
        ),
        PkiFile::public(
            format!("{stem}-chain.pem"),
            credential.chain_pem.as_bytes(),
            format!(
                "{who} chain, PEM ({}): what it sends in the handshake (R-46)",
                chain_order(credential.chain_der.len())
            ),
        ),
        PkiFile {
            name: format!("{stem}.key"),
            contents: credential.key_pem.clone().into_bytes(),
            secret: true,
            about: format!("{who} private key, PKCS#8 PEM (ECDSA P-256), mode 0600"),
        },
    ]
}

/// "leaf, intermediate, root" for a chain of `len` certificates.
fn chain_order(len: usize) -> &'static str {
    match len {
        3 => "leaf, intermediate CA, root CA",
        2 => "leaf, root CA",
        _ => "leaf first",
    }
}

/// `YYYY-MM-DD hh:mm:ss UTC`.
fn date(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

impl TestPki {
    /// Every file but README.txt, in the order they are written.
    fn files(&self) -> Vec<PkiFile> {
        let mut files = vec![
            PkiFile::public(
                "ca.pem",
                self.ca.cert_pem.as_bytes(),
                "root CA certificate, PEM: the trust anchor for servers and clients".to_owned(),
            ),
            PkiFile::public(
                "ca.der",
                self.ca.cert_der.as_slice(),
                "root CA certificate, DER".to_owned(),
            ),
            PkiFile::public(
                "intermediate.pem",
                self.intermediate.cert_pem.as_bytes(),
                "intermediate CA certificate, PEM: signed by ca.pem, signs the server, \
                 the clients and crl.pem (openssl verify -untrusted)"
                    .to_owned(),
            ),
        ];
        files.extend(leaf_files(
            "server",
            "server",
            &self.server,
            "CN mbaps-server, SANs DNS localhost, DNS mbaps-server, IP 127.0.0.1, IP ::1, \
             serverAuth",
        ));
        for standard in standard_clients() {
            let Some(credential) = self.client(standard.name) else {
                continue;
            };
            let mut about = format!(
                "{}, {}",
                standard.role.describe(),
                standard.validity.describe()
            );
            if standard.revoked {
                about.push_str(", REVOKED in crl.pem");
            }
            files.extend(leaf_files(
                &format!("client-{}", standard.name),
                &format!("client {}", standard.name),
                credential,
                &about,
            ));
        }
        files.push(PkiFile::public(
            "untrusted-ca.pem",
            self.untrusted_ca.cert_pem.as_bytes(),
            "an unrelated root CA, PEM: trusted by nobody, signs client-untrusted.pem".to_owned(),
        ));
        files.extend(leaf_files(
            "client-untrusted",
            "client untrusted",
            &self.untrusted_client,
            &format!(
                "{}, signed by untrusted-ca.pem: must be rejected",
                RoleExtension::Role("operator".to_owned()).describe()
            ),
        ));
        let crl_about =
            |form| format!("CRL of the intermediate CA, {form}: revokes client-revoked.pem");
        files.push(PkiFile::public(
            "crl.pem",
            self.crl_pem.as_bytes(),
            crl_about("PEM"),
        ));
        files.push(PkiFile::public(
            "crl.der",
            self.crl_der.as_slice(),
            crl_about("DER"),
        ));
        files.push(PkiFile::public(
            "ca-crl.pem",
            self.root_crl_pem.as_bytes(),
            "CRL of the root CA, PEM: revokes nothing; with crl.pem, CRLs cover whole chains"
                .into(),
        ));
        files
    }

    /// README.txt: a header, then one line per file saying what it is for.
    fn readme(&self, files: &[PkiFile]) -> String {
        let window = |days| days_from(self.now, days).map(date).unwrap_or_default();
        let mut text = format!(
            "mbaps test PKI (Modbus/TCP Security, port 802), generated by mbaps-test-pki.\n\
             TEST KEYS, STORED UNPROTECTED: never use them outside tests and demos.\n\
             Generated for: {now}\n\
             Leaves valid:  {from} to {leaf_to} (but client-expired, client-not-yet-valid)\n\
             CAs valid:     {from} to {ca_to}\n\
             Every key is ECDSA P-256, every signature ECDSA with SHA-256.\n\
             The role extension is OID 1.3.6.1.4.1.50316.802.1 (R-21), value UTF8String (R-22).\n\
             \n\
             Check a client: openssl verify -CAfile ca.pem -untrusted intermediate.pem \
             client-operator.pem\n\
             With the CRL:   openssl verify -crl_check -CRLfile crl.pem -CAfile ca.pem \
             -untrusted intermediate.pem client-revoked.pem\n\
             \n",
            now = date(self.now),
            from = window(-1),
            leaf_to = window(LEAF_DAYS),
            ca_to = window(CA_DAYS),
        );
        let width = files.iter().map(|f| f.name.len()).max().unwrap_or(0);
        for file in files {
            text.push_str(&format!("{:width$}  {}\n", file.name, file.about));
        }
        text.push_str(&format!("{README:width$}  this list\n"));
        text
    }

    /// What the file called `file_name` (as written by [`TestPki::write_to`],
    /// e.g. `"client-operator.key"`) is for: the line README.txt gives it.
    pub fn describe(&self, file_name: &str) -> Option<String> {
        if file_name == README {
            return Some("this list of files".to_owned());
        }
        self.files()
            .into_iter()
            .find(|file| file.name == file_name)
            .map(|file| file.about)
    }

    /// Writes every file to `dir` (created if missing) and returns the paths
    /// written, README.txt last: `ca.pem`, `ca.der`, `intermediate.pem`,
    /// `server.pem` (leaf alone), `server-chain.pem`, `server.key`, for each
    /// standard client `client-<name>.pem`, `client-<name>-chain.pem` and
    /// `client-<name>.key`, then `untrusted-ca.pem`, `client-untrusted.pem`,
    /// `client-untrusted-chain.pem`, `client-untrusted.key`, `crl.pem`,
    /// `crl.der` and `README.txt`. Keys are PKCS#8 PEM, mode 0600 on unix.
    /// Existing files are overwritten.
    pub fn write_to(&self, dir: &Path) -> Result<Vec<PathBuf>, PkiError> {
        fs::create_dir_all(dir).map_err(|source| PkiError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let files = self.files();
        let readme = self.readme(&files);
        let mut written = Vec::with_capacity(files.len() + 1);
        let all = files
            .iter()
            .map(|f| (f.name.as_str(), f.contents.as_slice(), f.secret))
            .chain([(README, readme.as_bytes(), false)]);
        for (name, contents, secret) in all {
            let path = dir.join(name);
            write_file(&path, contents, secret).map_err(|source| PkiError::Write {
                path: path.clone(),
                source,
            })?;
            written.push(path);
        }
        Ok(written)
    }
}

/// Writes `contents` to `path`; a `secret` is readable by its owner only
/// (0600 on unix, set before the contents go in, even if the file existed).
fn write_file(path: &Path, contents: &[u8], secret: bool) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = secret;
    file.write_all(contents)
}
