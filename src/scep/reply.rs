//! Building SCEP answers: the CA/RA certificates for `GetCACert`, and CertRep messages signed
//! by the RA (RFC 8894 §3.3.2). The parts a message is made of (attributes, the signed and
//! the enveloped layers) are public: a client builds its requests with the same ones (the
//! tests' clients do).

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::enveloped_data::{
    EncryptedContentInfo, EnvelopedData, KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo,
    RecipientInfos,
};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{ObjectIdentifier, OctetString, PrintableString, SetOfVec};
use der::{Any, Decode, Encode};
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::spki::AlgorithmIdentifierOwned;

use super::cipher::ContentCipher;
use super::request::Header;
use super::{FailInfo, MessageType, RaKey, oids};

#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    #[error("encoding the answer: {0}")]
    Der(#[from] der::Error),
    #[error("the RA key could not sign the answer")]
    Sign,
    #[error("the requester's certificate has no RSA key to encrypt the answer to")]
    RecipientKey,
    #[error("encrypting the answer failed")]
    Encrypt,
}

/// What a CertRep says.
pub enum Outcome<'a> {
    /// The certificate issued (DER), sent encrypted with the request's cipher.
    Granted {
        cert: &'a [u8],
        cipher: ContentCipher,
    },
    /// Held for the operator (RFC 8894 §3.3.2: pkiStatus PENDING): the client polls again
    /// with the same transactionID.
    Pending,
    Failed(FailInfo),
}

pub fn any<T: Encode>(value: &T) -> Result<Any, der::Error> {
    Any::from_der(&value.to_der()?)
}

fn alg(oid: ObjectIdentifier, null_params: bool) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid,
        parameters: null_params.then(|| Any::from(der::asn1::Null)),
    }
}

/// A certs-only ("degenerate") SignedData holding `certs` (DER each).
fn certs_only(certs: &[&[u8]]) -> Result<Vec<u8>, der::Error> {
    let mut set = SetOfVec::new();
    for der in certs {
        set.insert(CertificateChoices::Certificate(Certificate::from_der(der)?))?;
    }
    let sd = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: oids::DATA,
            econtent: None,
        },
        certificates: Some(CertificateSet(set)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    ContentInfo {
        content_type: oids::SIGNED_DATA,
        content: any(&sd)?,
    }
    .to_der()
}

/// The `GetCACert` answer (`application/x-x509-ca-ra-cert`): the RA certificate, which
/// clients encrypt to, and the CA certificate, which signs theirs.
pub fn ca_certs(ra_cert: &[u8], ca_cert: &[u8]) -> Result<Vec<u8>, der::Error> {
    certs_only(&[ra_cert, ca_cert])
}

pub fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute, der::Error> {
    let mut values = SetOfVec::new();
    values.insert(value)?;
    Ok(Attribute { oid, values })
}

pub fn printable(text: &str) -> Result<Any, der::Error> {
    any(&PrintableString::new(text)?)
}

/// A SignedData over `econtent` (DER of the data's OCTET STRING content) signed with SHA-256
/// and RSA by `signer_cert`'s key through `sign`, with `attrs` besides contentType and
/// messageDigest.
pub fn signed(
    econtent: &[u8],
    mut attrs: Vec<Attribute>,
    signer_cert: &[u8],
    sign: &dyn Fn(&[u8]) -> Option<Vec<u8>>,
) -> Result<Vec<u8>, ReplyError> {
    let signer = Certificate::from_der(signer_cert)?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, econtent);
    attrs.push(attribute(oids::CONTENT_TYPE, any(&oids::DATA)?)?);
    attrs.push(attribute(
        oids::MESSAGE_DIGEST,
        any(&OctetString::new(digest.as_ref())?)?,
    )?);
    let signed_attrs: SetOfVec<Attribute> = SetOfVec::try_from(attrs)?;
    let signature = sign(&signed_attrs.to_der()?).ok_or(ReplyError::Sign)?;
    let tbs = signer.tbs_certificate();
    let si = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: tbs.issuer().clone(),
            serial_number: tbs.serial_number().clone(),
        }),
        digest_alg: alg(oids::SHA256, false),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: alg(oids::SHA256_WITH_RSA, true),
        signature: OctetString::new(signature)?,
        unsigned_attrs: None,
    };
    let mut certs = SetOfVec::new();
    certs.insert(CertificateChoices::Certificate(signer))?;
    let mut digests = SetOfVec::new();
    digests.insert(alg(oids::SHA256, false))?;
    let mut signers = SetOfVec::new();
    signers.insert(si)?;
    let sd = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: digests,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: oids::DATA,
            econtent: Some(any(&OctetString::new(econtent)?)?),
        },
        certificates: Some(CertificateSet(certs)),
        crls: None,
        signer_infos: SignerInfos(signers),
    };
    Ok(ContentInfo {
        content_type: oids::SIGNED_DATA,
        content: any(&sd)?,
    }
    .to_der()?)
}

/// An EnvelopedData (as a ContentInfo, DER) of `content` encrypted with `cipher` under a fresh
/// key, the key sent to `recipient_cert`'s RSA key (PKCS#1 v1.5).
pub fn enveloped(
    content: &[u8],
    cipher: ContentCipher,
    recipient_cert: &Certificate,
) -> Result<Vec<u8>, ReplyError> {
    use aws_lc_rs::rsa::{Pkcs1PublicEncryptingKey, PublicEncryptingKey};
    let tbs = recipient_cert.tbs_certificate();
    let spki = tbs.subject_public_key_info().to_der()?;
    let public = PublicEncryptingKey::from_der(&spki)
        .ok()
        .and_then(|k| Pkcs1PublicEncryptingKey::new(k).ok())
        .ok_or(ReplyError::RecipientKey)?;
    let (key, iv) = cipher.fresh_key_iv();
    let mut enc_key = vec![0; public.ciphertext_size()];
    let enc_key = public
        .encrypt(&key, &mut enc_key)
        .map_err(|_| ReplyError::Encrypt)?
        .to_vec();
    let encrypted = cipher
        .encrypt(&key, &iv, content)
        .ok_or(ReplyError::Encrypt)?;
    let ktri = KeyTransRecipientInfo {
        version: CmsVersion::V0,
        rid: RecipientIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: tbs.issuer().clone(),
            serial_number: tbs.serial_number().clone(),
        }),
        key_enc_alg: alg(oids::RSA_ENCRYPTION, true),
        enc_key: OctetString::new(enc_key)?,
    };
    let mut recipients = SetOfVec::new();
    recipients.insert(RecipientInfo::Ktri(ktri))?;
    let env = EnvelopedData {
        version: CmsVersion::V0,
        originator_info: None,
        recip_infos: RecipientInfos(recipients),
        encrypted_content: EncryptedContentInfo {
            content_type: oids::DATA,
            content_enc_alg: cipher.algorithm(&iv)?,
            encrypted_content: Some(OctetString::new(encrypted)?),
        },
        unprotected_attrs: None,
    };
    Ok(ContentInfo {
        content_type: oids::ENVELOPED_DATA,
        content: any(&env)?,
    }
    .to_der()?)
}

/// A fresh 16-byte nonce.
fn nonce() -> [u8; 16] {
    let mut n = [0; 16];
    let rng = aws_lc_rs::rand::SystemRandom::new();
    // See `ContentCipher::fresh_key_iv`: a system without entropy runs no TLS either.
    let _ = aws_lc_rs::rand::SecureRandom::fill(&rng, &mut n);
    n
}

/// The CertRep answering `request`: signed by the RA, with the request's transaction and its
/// nonce as recipientNonce; on a grant, the certificate in a certs-only SignedData encrypted
/// to the certificate that signed the request.
pub fn cert_rep(
    ra: &dyn RaKey,
    request: &Header,
    outcome: Outcome<'_>,
) -> Result<Vec<u8>, ReplyError> {
    let mut attrs = vec![
        attribute(oids::MESSAGE_TYPE, printable(MessageType::CertRep.code())?)?,
        attribute(oids::TRANSACTION_ID, printable(&request.transaction_id)?)?,
        attribute(oids::SENDER_NONCE, any(&OctetString::new(nonce())?)?)?,
        attribute(
            oids::RECIPIENT_NONCE,
            any(&OctetString::new(request.sender_nonce.clone())?)?,
        )?,
    ];
    let content = match outcome {
        Outcome::Granted { cert, cipher } => {
            attrs.push(attribute(oids::PKI_STATUS, printable("0")?)?);
            enveloped(&certs_only(&[cert])?, cipher, &request.signer)?
        }
        Outcome::Pending => {
            attrs.push(attribute(oids::PKI_STATUS, printable("3")?)?);
            Vec::new()
        }
        Outcome::Failed(fail) => {
            attrs.push(attribute(oids::PKI_STATUS, printable("2")?)?);
            attrs.push(attribute(oids::FAIL_INFO, printable(fail.code())?)?);
            Vec::new()
        }
    };
    signed(&content, attrs, ra.cert_der(), &|m| ra.sign_sha256(m))
}
