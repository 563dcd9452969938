//! Signatures checked with the RustCrypto crates.

use ed25519_dalek::Verifier as _;
use rsa::{BigUint, RsaPublicKey, pkcs1v15, pss};
use sha2::{Sha256, Sha384, Sha512};

use crate::proof::alg::Algorithm;
use crate::proof::jwk::{KeyMaterial, MAX_RSA_BITS};

pub(super) fn verify(key: &KeyMaterial, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
    match key {
        KeyMaterial::P256(point) => {
            let (Ok(key), Ok(signature)) = (
                p256::ecdsa::VerifyingKey::from_sec1_bytes(point),
                p256::ecdsa::Signature::from_slice(signature),
            ) else {
                return false;
            };
            key.verify(message, &signature).is_ok()
        }
        KeyMaterial::P384(point) => {
            let (Ok(key), Ok(signature)) = (
                p384::ecdsa::VerifyingKey::from_sec1_bytes(point),
                p384::ecdsa::Signature::from_slice(signature),
            ) else {
                return false;
            };
            key.verify(message, &signature).is_ok()
        }
        KeyMaterial::Ed25519(bytes) => {
            let (Ok(key), Ok(signature)) = (
                ed25519_dalek::VerifyingKey::from_bytes(bytes),
                ed25519_dalek::Signature::from_slice(signature),
            ) else {
                return false;
            };
            key.verify_strict(message, &signature).is_ok()
        }
        KeyMaterial::Rsa { n, e } => {
            let Ok(key) = RsaPublicKey::new_with_max_size(
                BigUint::from_bytes_be(n),
                BigUint::from_bytes_be(e),
                MAX_RSA_BITS,
            ) else {
                return false;
            };
            rsa_verify(key, alg, message, signature)
        }
    }
}

fn rsa_verify(key: RsaPublicKey, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
    fn pkcs1<D>(key: RsaPublicKey, message: &[u8], signature: &[u8]) -> bool
    where
        D: sha2::Digest + rsa::pkcs8::AssociatedOid,
    {
        pkcs1v15::Signature::try_from(signature).is_ok_and(|signature| {
            pkcs1v15::VerifyingKey::<D>::new(key)
                .verify(message, &signature)
                .is_ok()
        })
    }
    fn pss<D>(key: RsaPublicKey, message: &[u8], signature: &[u8]) -> bool
    where
        D: sha2::Digest + sha2::digest::FixedOutputReset,
    {
        pss::Signature::try_from(signature).is_ok_and(|signature| {
            pss::VerifyingKey::<D>::new(key)
                .verify(message, &signature)
                .is_ok()
        })
    }
    match alg {
        Algorithm::Rs256 => pkcs1::<Sha256>(key, message, signature),
        Algorithm::Rs384 => pkcs1::<Sha384>(key, message, signature),
        Algorithm::Rs512 => pkcs1::<Sha512>(key, message, signature),
        Algorithm::Ps256 => pss::<Sha256>(key, message, signature),
        Algorithm::Ps384 => pss::<Sha384>(key, message, signature),
        Algorithm::Ps512 => pss::<Sha512>(key, message, signature),
        _ => false,
    }
}
