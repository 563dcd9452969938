//! Signatures checked with `ring`.

use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey, VerificationAlgorithm};

use crate::proof::alg::Algorithm;
use crate::proof::jwk::KeyMaterial;

pub(super) fn verify(key: &KeyMaterial, alg: Algorithm, message: &[u8], sig: &[u8]) -> bool {
    let point = |algorithm: &'static dyn VerificationAlgorithm, key: &[u8]| {
        UnparsedPublicKey::new(algorithm, key)
            .verify(message, sig)
            .is_ok()
    };
    match key {
        KeyMaterial::P256(key) => point(&signature::ECDSA_P256_SHA256_FIXED, key),
        KeyMaterial::P384(key) => point(&signature::ECDSA_P384_SHA384_FIXED, key),
        KeyMaterial::Ed25519(key) => point(&signature::ED25519, key),
        KeyMaterial::Rsa { n, e } => {
            let params = match alg {
                Algorithm::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                Algorithm::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                Algorithm::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                Algorithm::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
                Algorithm::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
                Algorithm::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
                _ => return false,
            };
            RsaPublicKeyComponents { n, e }
                .verify(params, message, sig)
                .is_ok()
        }
    }
}
