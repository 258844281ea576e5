//! The phone's half of QR linking, as the server forwards it: from the scanned code, a
//! `<pair-success>` whose device identity is signed by the account key and sealed with the
//! secret the code carried, which is what the client checks before it stores the identity.

use base64::Engine as _;
use whatsapp_rust::buffa::Message as _;
use whatsapp_rust::wacore::libsignal::crypto::hmac_sha256;
use whatsapp_rust::wacore::libsignal::protocol::KeyPair;
use whatsapp_rust::wacore_binary::Node;
use whatsapp_rust::wacore_binary::builder::NodeBuilder;
use whatsapp_rust::waproto::whatsapp as wa;

/// What the account signs over: this prefix, the identity details and the device's key.
const ACCOUNT_SIGNATURE_PREFIX: [u8; 2] = [6, 0];

/// The account that scans the code.
pub struct Phone {
    pub number: String,
    pub lid: String,
    /// The number the new linked device gets.
    pub device: u16,
    account: KeyPair,
}

impl Phone {
    pub fn new(number: &str, lid: &str, device: u16) -> Self {
        Self {
            number: number.to_owned(),
            lid: lid.to_owned(),
            device,
            account: KeyPair::generate(&mut rand::rng()),
        }
    }

    /// The `<iq><pair-success>` the server sends once this phone scanned `qr`
    /// (`ref,noise key,identity key,secret,platform`, keys and secret in base64).
    pub fn scan(&self, qr: &str, iq_id: &str) -> Node {
        let parts: Vec<&str> = qr.split(',').collect();
        assert!(parts.len() >= 4, "not a linking code");
        let decode = |part: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(part)
                .expect("base64 in the code")
        };
        let device_identity_key = decode(parts[2]);
        let secret = decode(parts[3]);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let details = wa::ADVDeviceIdentity {
            raw_id: Some(rand::random()),
            timestamp: Some(now),
            key_index: Some(1),
            ..Default::default()
        }
        .encode_to_vec();
        let signed_over = [
            &ACCOUNT_SIGNATURE_PREFIX[..],
            &details,
            &device_identity_key,
        ]
        .concat();
        let signature = self
            .account
            .private_key
            .calculate_signature(&signed_over, &mut rand::rng())
            .unwrap();
        let signed = wa::ADVSignedDeviceIdentity {
            details: Some(details),
            account_signature_key: Some(self.account.public_key.public_key_bytes().to_vec()),
            account_signature: Some(signature.to_vec()),
            ..Default::default()
        }
        .encode_to_vec();
        let hmac = hmac_sha256(&secret, &signed).to_vec();
        let sealed = wa::ADVSignedDeviceIdentityHMAC {
            details: Some(signed),
            hmac: Some(hmac),
            ..Default::default()
        }
        .encode_to_vec();
        let success = NodeBuilder::new("pair-success")
            .children([
                NodeBuilder::new("device-identity").bytes(sealed).build(),
                NodeBuilder::new("device")
                    .attr(
                        "jid",
                        format!("{}:{}@s.whatsapp.net", self.number, self.device),
                    )
                    .attr("lid", format!("{}:{}@lid", self.lid, self.device))
                    .build(),
                NodeBuilder::new("platform").attr("name", "android").build(),
            ])
            .build();
        super::server_iq(iq_id, "md", success)
    }
}
