//! A throwaway certificate authority made with the `openssl` command, for TLS tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cluster::server_user;
use crate::fs::TempDir;

/// A CA, a server certificate it signed (for `localhost` and `127.0.0.1`), and an unrelated second CA,
/// in a temp dir the PostgreSQL server user can read. Removed on drop.
#[derive(Debug)]
pub struct TestPki {
    dir: TempDir,
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// A CA that signed nothing here: verifying against it must fail.
    pub other_ca_cert: PathBuf,
}

impl TestPki {
    pub fn generate() -> TestPki {
        let dir = TempDir::new("testkit-pki");
        let path = |name: &str| dir.path().join(name);
        let ca_key = path("ca.key");
        let ca_cert = path("ca.crt");
        let other_ca_key = path("other-ca.key");
        let other_ca_cert = path("other-ca.crt");
        let server_key = path("server.key");
        let server_csr = path("server.csr");
        let server_cert = path("server.crt");
        let extensions = path("server.ext");

        for (key, cert, name) in [
            (&ca_key, &ca_cert, "testkit CA"),
            (&other_ca_key, &other_ca_cert, "testkit other CA"),
        ] {
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                s(key),
                "-out",
                s(cert),
            ]);
        }
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            s(&server_key),
            "-out",
            s(&server_csr),
        ]);
        std::fs::write(
            &extensions,
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .expect("writing the certificate extensions");
        openssl(&[
            "x509",
            "-req",
            "-in",
            s(&server_csr),
            "-CA",
            s(&ca_cert),
            "-CAkey",
            s(&ca_key),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            s(&extensions),
            "-out",
            s(&server_cert),
        ]);

        let pki = TestPki {
            dir,
            ca_cert,
            server_cert,
            server_key,
            other_ca_cert,
        };
        pki.hand_to_server_user();
        pki
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Server settings that turn TLS on with this server certificate.
    pub fn server_settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ssl", "on".to_owned()),
            ("ssl_cert_file", s(&self.server_cert).to_owned()),
            ("ssl_key_file", s(&self.server_key).to_owned()),
        ]
    }

    /// Writes another file (e.g. a pg_hba.conf) into this directory, readable by the server user.
    pub fn write_file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content)
            .unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
        self.hand_to_server_user();
        path
    }

    /// PostgreSQL insists its key is owned by the server user and not readable by others.
    fn hand_to_server_user(&self) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&self.server_key, std::fs::Permissions::from_mode(0o600))
            .expect("chmod server key");
        if let Some(user) = server_user() {
            for entry in std::fs::read_dir(self.dir.path()).expect("listing the pki dir") {
                let path = entry.expect("pki dir entry").path();
                std::os::unix::fs::chown(&path, Some(user.uid), Some(user.gid))
                    .unwrap_or_else(|err| panic!("chown {}: {err}", path.display()));
            }
        }
    }
}

fn s(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

fn openssl(args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running the openssl command (is it installed?)");
    assert!(
        output.status.success(),
        "openssl {} failed ({}):\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}
