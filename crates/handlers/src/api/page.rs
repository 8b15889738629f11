//! Page tokens: the key where the next page starts, signed (HMAC-SHA256) and bound to the
//! listing it belongs to, so a forged or reused token is a 400, never a read of other data.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ferry_core::state::PageKey;
use ferry_core::{Error, ErrorCode, Result};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

#[derive(Clone)]
pub struct PageTokens {
    key: Vec<u8>,
}

fn invalid() -> Error {
    Error::new(
        ErrorCode::InvalidInput,
        "next_token: not a token this API issued",
    )
}

impl PageTokens {
    pub fn new(key: &[u8]) -> Self {
        PageTokens { key: key.to_vec() }
    }

    fn mac(&self, scope: &str, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(scope.as_bytes());
        mac.update(&[0]);
        mac.update(payload);
        mac
    }

    /// A token for `key` in the listing `scope` (e.g. `runs:<migration>`).
    pub fn issue(&self, key: &PageKey, scope: &str) -> String {
        let payload = serde_json::to_vec(key).expect("a page key serialises");
        let tag = self.mac(scope, &payload).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    pub fn read(&self, token: &str, scope: &str) -> Result<PageKey> {
        let (payload, tag) = token.split_once('.').ok_or_else(invalid)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| invalid())?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| invalid())?;
        self.mac(scope, &payload)
            .verify_slice(&tag)
            .map_err(|_| invalid())?;
        serde_json::from_slice(&payload).map_err(|_| invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_forgeries_are_refused() {
        let tokens = PageTokens::new(b"0123456789abcdef");
        let key = PageKey {
            pk: "MIGRATION#m".into(),
            sk: "RUN#01".into(),
        };
        let token = tokens.issue(&key, "runs:m");
        assert_eq!(tokens.read(&token, "runs:m").unwrap(), key);
        // Another listing, another key, an edited payload: all refused.
        assert!(tokens.read(&token, "runs:other").is_err());
        assert!(PageTokens::new(b"fedcba9876543210")
            .read(&token, "runs:m")
            .is_err());
        let forged_key = PageKey {
            pk: "MIGRATION#other".into(),
            sk: "RUN#01".into(),
        };
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged_key).unwrap()),
            token.split_once('.').unwrap().1
        );
        let err = tokens.read(&forged, "runs:m").unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidInput);
        assert!(tokens.read("garbage", "runs:m").is_err());
    }
}
