//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>), so receivers verify with
//! the existing libraries: `webhook-signature: v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>`,
//! space-separated when more than one secret signs (a rotation's overlap). The key is the
//! base64-decoded part of the secret after `whsec_`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit as _, Mac as _};

const PREFIX: &str = "whsec_";
const SECRET_BYTES: usize = 32;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// A new secret: `whsec_` and the base64 of 32 bytes from the kernel's CSPRNG.
pub fn new_secret() -> std::io::Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; SECRET_BYTES];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(format!("{PREFIX}{}", STANDARD.encode(bytes)))
}

/// The HMAC key a secret stands for; `None` if it is not one of ours.
fn key_of(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix(PREFIX)?).ok()
}

/// The `webhook-signature` value for one message, signed with every secret given.
pub fn signature<'a>(
    secrets: impl Iterator<Item = &'a str>,
    id: &str,
    timestamp_s: u64,
    body: &[u8],
) -> String {
    let mut header = String::new();
    for key in secrets.filter_map(key_of) {
        // Any key length is valid for HMAC.
        let Ok(mut mac) = HmacSha256::new_from_slice(&key) else {
            continue;
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp_s.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        if !header.is_empty() {
            header.push(' ');
        }
        header.push_str("v1,");
        header.push_str(&STANDARD.encode(mac.finalize().into_bytes()));
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_specifications_example() {
        // The example of the Standard Webhooks specification.
        let sig = signature(
            std::iter::once("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn every_secret_signs_and_foreign_ones_are_skipped() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert!(a.starts_with(PREFIX) && a != b);
        assert_eq!(key_of(&a).map(|k| k.len()), Some(SECRET_BYTES));
        let both = signature([a.as_str(), b.as_str()].into_iter(), "msg_1", 1, b"{}");
        let parts: Vec<&str> = both.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[0],
            signature(std::iter::once(a.as_str()), "msg_1", 1, b"{}")
        );
        assert_eq!(signature(std::iter::once("nope"), "msg_1", 1, b"{}"), "");
    }
}
