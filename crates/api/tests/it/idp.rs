//! A fake OpenID provider for the login tests: a discovery document and a JWKS served on
//! a free loopback port by the simulators' server (which records requests, so the JWKS
//! fetches can be counted); ES256 test keys made fresh per test, and ID tokens minted
//! with them.

use crate::{TestApp, access_config};
use actix_web::{HttpResponse, web};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cons_api::access::Access;
use cons_sim::server::{SimServer, serve};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const AUDIENCE: &str = "cons-web";

/// An ES256 key pair of the provider.
pub struct TestKey {
    pub kid: String,
    pkcs8: Vec<u8>,
    /// The uncompressed point: 0x04, x, y.
    public: Vec<u8>,
}

impl TestKey {
    pub fn generate(kid: &str) -> TestKey {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        TestKey {
            kid: kid.into(),
            pkcs8: pair.to_pkcs8v1().unwrap().as_ref().to_vec(),
            public: pair.public_key().as_ref().to_vec(),
        }
    }

    pub fn jwk(&self) -> Value {
        json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(&self.public[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&self.public[33..65]),
        })
    }

    /// The public key as an attacker has it: PEM of its SubjectPublicKeyInfo.
    pub fn public_pem(&self) -> String {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &self.pkcs8).unwrap();
        let der = pair.public_key().as_der().unwrap();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(der.as_ref())
        )
    }

    /// An ES256 ID token with these claims, naming `kid` in its header.
    pub fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&self.pkcs8)).unwrap()
    }

    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }
}

const JWKS_PATH: &str = "/realms/cons/protocol/openid-connect/certs";

#[derive(Default)]
struct IdpState {
    keys: Mutex<Vec<Value>>,
    issuer: Mutex<String>,
}

/// The provider, served by the simulators' server (which records every request).
pub struct FakeIdp {
    pub issuer: String,
    state: Arc<IdpState>,
    server: SimServer,
}

impl FakeIdp {
    pub fn start() -> FakeIdp {
        let state = Arc::new(IdpState::default());
        let shared = web::Data::from(state.clone());
        let server = serve("127.0.0.1:0", 1, Arc::default(), move |config| {
            config
                .app_data(shared.clone())
                .route(
                    "/realms/cons/.well-known/openid-configuration",
                    web::get().to(|state: web::Data<IdpState>| async move {
                        let issuer = state.issuer.lock().unwrap().clone();
                        HttpResponse::Ok().json(json!({
                            "issuer": issuer,
                            "jwks_uri": format!("{issuer}/protocol/openid-connect/certs"),
                        }))
                    }),
                )
                .route(
                    JWKS_PATH,
                    web::get().to(|state: web::Data<IdpState>| async move {
                        let keys = state.keys.lock().unwrap().clone();
                        HttpResponse::Ok()
                            .insert_header(("Cache-Control", "public, max-age=3600"))
                            .json(json!({ "keys": keys }))
                    }),
                );
        })
        .unwrap();
        let issuer = format!("{}/realms/cons", server.base_url);
        *state.issuer.lock().unwrap() = issuer.clone();
        FakeIdp {
            issuer,
            state,
            server,
        }
    }

    pub fn publish(&self, key: &TestKey) {
        self.state.keys.lock().unwrap().push(key.jwk());
    }

    /// How often the JWKS was fetched.
    pub fn fetches(&self) -> usize {
        self.server
            .requests()
            .iter()
            .filter(|request| request.path == JWKS_PATH)
            .count()
    }

    /// Valid claims for `subject`, issued now.
    pub fn claims(&self, subject: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({
            "iss": self.issuer, "aud": AUDIENCE, "sub": subject,
            "iat": now, "exp": now + 300,
            "name": "Dilnoza Karimova",
            "email": "d.karimova@example.uz", "email_verified": true,
        })
    }

    /// An app whose OIDC login trusts this provider (by discovery), its keys fetched at
    /// start as `cons_api::build` does; an unknown `kid` refetches at most every
    /// `refresh_interval`.
    pub async fn app(&self, refresh_interval: Duration) -> TestApp {
        let config = access_config(&[("OIDC_ISSUER", &self.issuer), ("OIDC_AUDIENCE", AUDIENCE)]);
        let access = Access::new(&config, refresh_interval).unwrap();
        if let Some(oidc) = &access.oidc {
            oidc.keys().refresh().await;
        }
        TestApp::with_access(access).await
    }
}
