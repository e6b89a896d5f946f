//! A test certificate authority made with rcgen, and a server certificate it signs
//! for `localhost` and 127.0.0.1, written as PEM files into a temp dir.

use super::temp_dir;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

pub struct TestCa {
    dir: tempfile::TempDir,
    /// The CA certificate, for `sslrootcert`.
    pub ca_cert: PathBuf,
    /// Server certificate for `localhost` and `127.0.0.1`.
    pub server_cert: PathBuf,
    /// Its private key (PKCS#8 PEM, mode 0600).
    pub server_key: PathBuf,
}

impl TestCa {
    /// A new CA whose subject carries `name`, so two CAs never look alike.
    pub fn new(name: &str) -> TestCa {
        let ca_key = KeyPair::generate().expect("generate CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.distinguished_name.push(DnType::CommonName, format!("pgflip test CA {name}"));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca = ca_params.self_signed(&ca_key).expect("self-sign CA");

        let server_key = KeyPair::generate().expect("generate server key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).expect("server params");
        params.distinguished_name.push(DnType::CommonName, "localhost");
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let server = params.signed_by(&server_key, &ca, &ca_key).expect("sign server cert");

        let dir = temp_dir("pgflip-ca-");
        let ca_cert = dir.path().join("ca.pem");
        let server_cert = dir.path().join("server.crt");
        let server_key_path = dir.path().join("server.key");
        std::fs::write(&ca_cert, ca.pem()).expect("write ca.pem");
        std::fs::write(&server_cert, server.pem()).expect("write server.crt");
        std::fs::write(&server_key_path, server_key.serialize_pem()).expect("write key");
        std::fs::set_permissions(&server_key_path, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
        TestCa { dir, ca_cert, server_cert, server_key: server_key_path }
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}
