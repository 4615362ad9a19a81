//! OpenID Connect login: checks an ID token (`reliability.md` §5): its size, an algorithm
//! from the configured allow-list that also fits the key (no `none`, no HMAC keyed with a
//! public key), the signature against the provider's JWKS, `iss` exactly, `aud` (and
//! `azp`), `exp`, `nbf` and `iat` with a small clock skew, and an `iat` recent enough for
//! a login exchange.

use super::Refusal;
use super::jwks::Jwks;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::str::FromStr;
use std::sync::Arc;

/// ID tokens are a kilobyte or two; longer input is refused before parsing.
const MAX_TOKEN_BYTES: usize = 8192;
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
const LEEWAY_SECS: i64 = 60;
/// A login exchanges a token just issued; an older one is refused (OIDC Core §3.1.3.7).
const MAX_TOKEN_AGE_SECS: i64 = 10 * 60;

/// The provider whose ID tokens `POST /api/auth/login` accepts.
#[derive(Debug, Clone)]
pub struct OidcLogin {
    issuer: String,
    audience: String,
    algorithms: Vec<Algorithm>,
    keys: Arc<Jwks>,
}

/// The claims we read from a verified ID token.
#[derive(Debug, Deserialize)]
pub struct IdClaims {
    pub sub: String,
    iat: i64,
    azp: Option<String>,
    /// One audience or several (jsonwebtoken has checked ours is among them).
    aud: serde_json::Value,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub preferred_username: Option<String>,
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: bool,
    pub phone_number: Option<String>,
    #[serde(default)]
    pub phone_number_verified: bool,
}

impl OidcLogin {
    pub fn new(
        issuer: String,
        audience: String,
        algorithms: Vec<Algorithm>,
        keys: Arc<Jwks>,
    ) -> OidcLogin {
        OidcLogin {
            issuer,
            audience,
            algorithms,
            keys,
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn keys(&self) -> &Arc<Jwks> {
        &self.keys
    }

    /// The claims of `id_token` if it is a valid ID token of this provider for us, at
    /// `now` (Unix seconds).
    pub async fn verify(&self, id_token: &str, now: i64) -> Result<IdClaims, Refusal> {
        if id_token.len() > MAX_TOKEN_BYTES {
            return Err(Refusal("the ID token is too long"));
        }
        // Parsing the header refuses `alg: none` (not an algorithm jsonwebtoken knows).
        // Only `alg` and `kid` are read from it: never a key or a key URL (`jwk`, `jku`,
        // `x5u`) carried by the token itself.
        let header = jsonwebtoken::decode_header(id_token)
            .map_err(|_| Refusal("the ID token header is not valid"))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(Refusal("the ID token algorithm is not allowed"));
        }
        let jwk = self
            .keys
            .key(header.kid.as_deref())
            .await
            .ok_or(Refusal("no key of the provider matches the ID token"))?;
        let key = decoding_key(&jwk, header.alg)?;

        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS.unsigned_abs();
        let claims = jsonwebtoken::decode::<IdClaims>(id_token, &key, &validation)
            .map_err(|error| Refusal(refusal_of(&error)))?
            .claims;

        if claims.sub.is_empty() {
            return Err(Refusal("the ID token names no subject"));
        }
        if claims.iat > now + LEEWAY_SECS {
            return Err(Refusal("the ID token is issued in the future"));
        }
        if claims.iat < now - MAX_TOKEN_AGE_SECS - LEEWAY_SECS {
            return Err(Refusal("the ID token was issued too long ago for a login"));
        }
        let several_audiences = claims.aud.as_array().is_some_and(|all| all.len() > 1);
        match &claims.azp {
            Some(azp) if *azp != self.audience => {
                return Err(Refusal("the ID token is for another party (azp)"));
            }
            None if several_audiences => {
                return Err(Refusal("the ID token has several audiences and no azp"));
            }
            _ => {}
        }
        Ok(claims)
    }
}

/// The key for `alg`, if the JWK may sign with it: a signing key (`use` absent or `sig`),
/// of the algorithm's family, and of that very algorithm when the JWK names one. HMAC
/// keys (`kty: oct`) never pass: the allow-list holds asymmetric algorithms only.
fn decoding_key(jwk: &Jwk, alg: Algorithm) -> Result<DecodingKey, Refusal> {
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|usage| *usage != PublicKeyUse::Signature)
    {
        return Err(Refusal("the provider's key is not a signing key"));
    }
    if let Some(key_alg) = jwk.common.key_algorithm
        && Algorithm::from_str(&key_alg.to_string()).ok() != Some(alg)
    {
        return Err(Refusal("the provider's key is for another algorithm"));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| Refusal("the provider's key is unusable"))?;
    if key.family() != alg.family() {
        return Err(Refusal("the provider's key is of another kind"));
    }
    Ok(key)
}

fn refusal_of(error: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::InvalidSignature => "the ID token signature is not valid",
        ErrorKind::ExpiredSignature => "the ID token has expired",
        ErrorKind::ImmatureSignature => "the ID token is not valid yet (nbf)",
        ErrorKind::InvalidIssuer => "the ID token is from another issuer",
        ErrorKind::InvalidAudience => "the ID token is for another audience",
        ErrorKind::MissingRequiredClaim(_) => "the ID token lacks a required claim",
        ErrorKind::InvalidAlgorithm => "the ID token algorithm does not fit the key",
        _ => "the ID token is not valid",
    }
}

/// The algorithms `OIDC_ALGORITHMS` may list: asymmetric ones only, so a provider's
/// public key can never serve as an HMAC secret.
pub fn parse_algorithms(raw: &str) -> Result<Vec<Algorithm>, String> {
    let mut algorithms = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let alg = Algorithm::from_str(name)
            .ok()
            .filter(|alg| !matches!(alg.family(), jsonwebtoken::AlgorithmFamily::Hmac))
            .ok_or_else(|| {
                format!("{name} is not an asymmetric JWS algorithm (RS256, PS256, ES256, EdDSA, …)")
            })?;
        algorithms.push(alg);
    }
    if algorithms.is_empty() {
        return Err("expected at least one algorithm".into());
    }
    Ok(algorithms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_asymmetric_algorithms_are_allowed() {
        assert_eq!(
            parse_algorithms("RS256, ES256").unwrap(),
            vec![Algorithm::RS256, Algorithm::ES256]
        );
        assert!(parse_algorithms("HS256").is_err());
        assert!(parse_algorithms("none").is_err());
        assert!(parse_algorithms("").is_err());
    }
}
