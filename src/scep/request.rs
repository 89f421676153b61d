//! Reading a pkiMessage: the signed envelope first (who sent it, which transaction), then its
//! signature and the encrypted request inside.
//!
//! Two stages because they fail differently: a message whose signed envelope cannot be read
//! cannot be answered in SCEP at all (HTTP 400), while one whose signature or content fails
//! is answered with a CertRep FAILURE that the client can match to its transaction.

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::CmsVersion;
use cms::content_info::ContentInfo;
use cms::enveloped_data::{OriginatorInfo, RecipientIdentifier, RecipientInfo, RecipientInfos};
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use der::asn1::{ObjectIdentifier, OctetString, PrintableString};
use der::{Any, Decode, Encode, Sequence, Tag, TagNumber, Tagged};
use x509_cert::Certificate;
use x509_cert::attr::Attributes;
use x509_cert::spki::AlgorithmIdentifierOwned;

use super::cipher::ContentCipher;
use super::csr::{CsrFacts, read_csr};
use super::{FailInfo, MessageType, RaKey, ScepError, oids};

/// The one reason given, whatever failed once the signature checked out: unwrapping the
/// content key, decrypting the content (its CBC padding), reading the certificate request or
/// checking its self-signature. An answer that told these apart would be a padding oracle: an
/// attacker replaying a captured envelope with chosen IVs, signed with a key of his own, would
/// read the request (and its challenge password) byte by byte from the failInfo.
pub const UNREADABLE: &str =
    "the encrypted content does not open to a self-signed certificate request";

/// The signed envelope of a request, read but not yet checked.
#[derive(Debug, Clone)]
pub struct Header {
    pub message_type: MessageType,
    pub transaction_id: String,
    pub sender_nonce: Vec<u8>,
    /// The certificate that signed the message: a self-signed one for a first enrolment, the
    /// device's current certificate for a renewal. The answer is encrypted to it.
    pub signer: Certificate,
    pub signer_der: Vec<u8>,
}

/// A request whose signature verified, whose content was opened and read as a self-signed
/// PKCS#10 request. Only what the request says is kept, not its decrypted bytes, and the
/// challenge in it is left out of Debug output (see [`CsrFacts`]).
#[derive(Debug, Clone)]
pub struct PkiRequest {
    pub header: Header,
    /// The cipher the client encrypted with: the answer uses it too.
    pub cipher: ContentCipher,
    /// The certificate request the decrypted messageData holds.
    pub csr: CsrFacts,
}

/// Why a request whose envelope was read is refused: the CertRep FAILURE says `fail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub fail: FailInfo,
    pub reason: String,
}

impl Refusal {
    pub fn new(fail: FailInfo, reason: impl Into<String>) -> Refusal {
        Refusal {
            fail,
            reason: reason.into(),
        }
    }
}

/// A request read so far: its envelope, and what checking it still needs.
pub struct Signed {
    pub header: Header,
    signer_info: SignerInfo,
    econtent: Vec<u8>,
}

/// Reads the signed envelope of a pkiMessage (DER).
pub fn read_header(body: &[u8]) -> Result<Signed, ScepError> {
    let not_signed = |e: String| ScepError::NotSignedData(e);
    let ci = ContentInfo::from_ber(body).map_err(|e| not_signed(e.to_string()))?;
    if ci.content_type != oids::SIGNED_DATA {
        return Err(not_signed(format!("content type {}", ci.content_type)));
    }
    let sd: SignedData = ber(&ci.content).map_err(|e| not_signed(e.to_string()))?;
    let mut signers = sd.signer_infos.0.iter();
    let (Some(si), None) = (signers.next(), signers.next()) else {
        return Err(ScepError::Signer("it must have exactly one signer".into()));
    };
    let certs: Vec<&Certificate> = sd
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|c| match c {
            CertificateChoices::Certificate(c) => Some(c),
            CertificateChoices::Other(_) => None,
        })
        .collect();
    let signer = certs
        .iter()
        .find(|c| identifies(&si.sid, c))
        .copied()
        .ok_or_else(|| ScepError::Signer("its certificate is not in the message".into()))?
        .clone();
    let signer_der = signer
        .to_der()
        .map_err(|e| ScepError::Signer(e.to_string()))?;
    let attrs = si
        .signed_attrs
        .as_ref()
        .ok_or_else(|| ScepError::Attribute("signedAttrs", "missing".into()))?;
    let attr = |oid: ObjectIdentifier, name: &'static str| {
        let mut found = attrs.iter().filter(|a| a.oid == oid);
        match (found.next(), found.next()) {
            (Some(a), None) if a.values.len() == 1 => a
                .values
                .get(0)
                .cloned()
                .ok_or_else(|| ScepError::Attribute(name, "no value".into())),
            (None, _) => Err(ScepError::Attribute(name, "missing".into())),
            _ => Err(ScepError::Attribute(name, "more than one value".into())),
        }
    };
    let printable = |oid, name| -> Result<String, ScepError> {
        let v = attr(oid, name)?;
        v.decode_as::<PrintableString>()
            .map(|s| s.to_string())
            .map_err(|e| ScepError::Attribute(name, format!("not a PrintableString: {e}")))
    };
    let message_type = printable(oids::MESSAGE_TYPE, "messageType")?;
    let message_type = MessageType::parse(&message_type).ok_or_else(|| {
        ScepError::Attribute(
            "messageType",
            format!("{:?} is not a SCEP message type", clip(&message_type)),
        )
    })?;
    let transaction_id = printable(oids::TRANSACTION_ID, "transactionID")?;
    if transaction_id.is_empty() || transaction_id.len() > 128 {
        return Err(ScepError::Attribute(
            "transactionID",
            "must be 1 to 128 characters".into(),
        ));
    }
    let sender_nonce = attr(oids::SENDER_NONCE, "senderNonce")?
        .decode_as::<OctetString>()
        .map_err(|e| ScepError::Attribute("senderNonce", format!("not an OCTET STRING: {e}")))?
        .into_bytes();
    if sender_nonce.len() != 16 {
        return Err(ScepError::Attribute(
            "senderNonce",
            format!("{} bytes, not 16", sender_nonce.len()),
        ));
    }
    let econtent = match &sd.encap_content_info.econtent {
        Some(any) if sd.encap_content_info.econtent_type == oids::DATA => any
            .decode_as::<OctetString>()
            .map_err(|e| not_signed(format!("its content is not an OCTET STRING: {e}")))?
            .into_bytes(),
        _ => return Err(not_signed("it carries no data content".into())),
    };
    Ok(Signed {
        header: Header {
            message_type,
            transaction_id,
            sender_nonce: sender_nonce.into_vec(),
            signer,
            signer_der,
        },
        signer_info: si.clone(),
        econtent: econtent.into_vec(),
    })
}

impl Signed {
    /// Checks the signature, opens the envelope with the RA's key and reads the certificate
    /// request inside. `single_des`: whether content encrypted with single DES is accepted
    /// (`scep.allow_single_des`). The error keeps the header, which the FAILURE answering it
    /// needs. Past the signature, refusals tell apart only what the envelope says in clear
    /// (recipient, algorithms); every failure that depends on the decrypted bytes is the one
    /// [`UNREADABLE`] refusal.
    pub fn open(
        self,
        ra: &dyn RaKey,
        single_des: bool,
    ) -> Result<PkiRequest, Box<(Header, Refusal)>> {
        let Signed {
            header,
            signer_info,
            econtent,
        } = self;
        match verify(&header, &signer_info, &econtent)
            .and_then(|()| decrypt(&econtent, ra, single_des, |c| read_csr(c).ok()))
        {
            Ok((cipher, csr)) => Ok(PkiRequest {
                header,
                cipher,
                csr,
            }),
            Err(r) => Err(Box::new((header, r))),
        }
    }
}

/// A CertPoll whose signature verified and whose content opened to an IssuerAndSubject.
#[derive(Debug, Clone)]
pub struct PollRequest {
    pub header: Header,
    pub cipher: ContentCipher,
    /// What the IssuerAndSubject's subject says.
    pub subject: super::poll::PollSubject,
}

impl Signed {
    /// [`Signed::open`] for a CertPoll (RFC 8894 §3.3.3), whose content is the
    /// IssuerAndSubject of the request it polls for rather than a certificate request. Its
    /// failures past the signature are the one [`UNREADABLE`] refusal too.
    pub fn open_poll(
        self,
        ra: &dyn RaKey,
        single_des: bool,
    ) -> Result<PollRequest, Box<(Header, Refusal)>> {
        let Signed {
            header,
            signer_info,
            econtent,
        } = self;
        match verify(&header, &signer_info, &econtent).and_then(|()| {
            decrypt(
                &econtent,
                ra,
                single_des,
                super::poll::read_issuer_and_subject,
            )
        }) {
            Ok((cipher, subject)) => Ok(PollRequest {
                header,
                cipher,
                subject,
            }),
            Err(r) => Err(Box::new((header, r))),
        }
    }
}

impl Signed {
    /// Checks the signature and opens the envelope to its raw content: a client reading the
    /// certificates a CertRep carries (`ra` is then the client's own key; the unit tests'
    /// clients).
    #[cfg(test)]
    pub fn open_data(
        self,
        ra: &dyn RaKey,
        single_des: bool,
    ) -> Result<(ContentCipher, Vec<u8>), Refusal> {
        verify(&self.header, &self.signer_info, &self.econtent)?;
        decrypt(&self.econtent, ra, single_des, |c| Some(c.to_vec()))
    }

    /// Checks the signature alone (a client reading a CertRep; tests).
    pub fn verify_signature(&self) -> Result<(), Refusal> {
        verify(&self.header, &self.signer_info, &self.econtent)
    }

    /// The value of signed attribute `oid` as a PrintableString (pkiStatus, failInfo).
    pub fn printable_attribute(&self, oid: &der::asn1::ObjectIdentifier) -> Option<String> {
        self.signer_info
            .signed_attrs
            .as_ref()?
            .iter()
            .find(|a| &a.oid == oid)?
            .values
            .get(0)?
            .decode_as::<PrintableString>()
            .ok()
            .map(|s| s.to_string())
    }
}

/// Reads, verifies and opens a pkiMessage in one go (tests and tools; the route answers the
/// stages' failures differently).
pub fn parse_request(
    body: &[u8],
    ra: &dyn RaKey,
    single_des: bool,
) -> Result<PkiRequest, ScepError> {
    read_header(body)?.open(ra, single_des).map_err(|refused| {
        let (_, r) = *refused;
        ScepError::Refused {
            fail: r.fail,
            reason: r.reason,
        }
    })
}

/// Decodes `any` under BER: clients (Go's pkcs7 among them) send constructed OCTET STRINGs
/// and other forms DER forbids. What is signed is re-encoded in DER before it is checked.
fn ber<T: for<'a> Decode<'a, Error = der::Error>>(any: &der::Any) -> Result<T, der::Error> {
    T::from_ber(&any.to_der()?)
}

fn clip(s: &str) -> String {
    s.chars().take(32).collect()
}

/// Whether `sid` names `cert`.
fn identifies(sid: &SignerIdentifier, cert: &Certificate) -> bool {
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(isn) => is_issuer_and_serial(isn, cert),
        SignerIdentifier::SubjectKeyIdentifier(ski) => subject_key_id(cert).as_ref() == Some(ski),
    }
}

fn is_issuer_and_serial(isn: &IssuerAndSerialNumber, cert: &Certificate) -> bool {
    let tbs = cert.tbs_certificate();
    &isn.issuer == tbs.issuer() && &isn.serial_number == tbs.serial_number()
}

fn subject_key_id(cert: &Certificate) -> Option<x509_cert::ext::pkix::SubjectKeyIdentifier> {
    cert.tbs_certificate()
        .get_extension::<x509_cert::ext::pkix::SubjectKeyIdentifier>()
        .ok()
        .flatten()
        .map(|(_, ski)| ski)
}

/// The digest a signer info names.
fn digest_alg(oid: &ObjectIdentifier) -> Option<&'static aws_lc_rs::digest::Algorithm> {
    use aws_lc_rs::digest;
    match *oid {
        oids::SHA1 => Some(&digest::SHA1_FOR_LEGACY_USE_ONLY),
        oids::SHA256 => Some(&digest::SHA256),
        oids::SHA384 => Some(&digest::SHA384),
        oids::SHA512 => Some(&digest::SHA512),
        _ => None,
    }
}

/// Checks the signer's signature over the signed attributes, and that their messageDigest is
/// the content's. SHA-1 is accepted: clients still sign with it (micromdm's among them), and a
/// forged signature would at most let someone send a request as a self-signed key of their
/// own making, which the challenge or the renewal check still has to pass.
fn verify(header: &Header, si: &SignerInfo, econtent: &[u8]) -> Result<(), Refusal> {
    use aws_lc_rs::signature;
    let bad_alg = |what: String| Refusal::new(FailInfo::BadAlg, what);
    let digest = digest_alg(&si.digest_alg.oid).ok_or_else(|| {
        bad_alg(format!(
            "digest algorithm {} is not supported",
            si.digest_alg.oid
        ))
    })?;
    let attrs = si
        .signed_attrs
        .as_ref()
        .ok_or_else(|| Refusal::new(FailInfo::BadMessageCheck, "no signed attributes"))?;
    let claimed = attrs
        .iter()
        .find(|a| a.oid == oids::MESSAGE_DIGEST)
        .and_then(|a| a.values.get(0))
        .and_then(|v| v.decode_as::<OctetString>().ok())
        .ok_or_else(|| Refusal::new(FailInfo::BadMessageCheck, "no messageDigest attribute"))?;
    let actual = aws_lc_rs::digest::digest(digest, econtent);
    if claimed.as_bytes() != actual.as_ref() {
        return Err(Refusal::new(
            FailInfo::BadMessageCheck,
            "the messageDigest is not the content's digest",
        ));
    }
    let signed = attrs
        .to_der()
        .map_err(|e| Refusal::new(FailInfo::BadMessageCheck, e.to_string()))?;
    let spki = header.signer.tbs_certificate().subject_public_key_info();
    let key = spki.subject_public_key.raw_bytes();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    let alg: &dyn signature::VerificationAlgorithm = match (
        spki.algorithm.oid,
        si.signature_algorithm.oid,
        si.digest_alg.oid,
    ) {
        (oids::RSA_ENCRYPTION, oids::RSA_ENCRYPTION | oids::SHA1_WITH_RSA, oids::SHA1) => {
            &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY
        }
        (oids::RSA_ENCRYPTION, oids::RSA_ENCRYPTION | oids::SHA256_WITH_RSA, oids::SHA256) => {
            &signature::RSA_PKCS1_2048_8192_SHA256
        }
        (oids::RSA_ENCRYPTION, oids::RSA_ENCRYPTION | oids::SHA384_WITH_RSA, oids::SHA384) => {
            &signature::RSA_PKCS1_2048_8192_SHA384
        }
        (oids::RSA_ENCRYPTION, oids::RSA_ENCRYPTION | oids::SHA512_WITH_RSA, oids::SHA512) => {
            &signature::RSA_PKCS1_2048_8192_SHA512
        }
        (oids::EC_PUBLIC_KEY, oids::ECDSA_WITH_SHA256, oids::SHA256)
            if curve == Some(oids::P256) =>
        {
            &signature::ECDSA_P256_SHA256_ASN1
        }
        (oids::EC_PUBLIC_KEY, oids::ECDSA_WITH_SHA384, oids::SHA384)
            if curve == Some(oids::P384) =>
        {
            &signature::ECDSA_P384_SHA384_ASN1
        }
        (k, s, d) => {
            return Err(bad_alg(format!(
                "signature {s} with digest {d} by a key of type {k} is not supported"
            )));
        }
    };
    signature::UnparsedPublicKey::new(alg, key)
        .verify(&signed, si.signature.as_bytes())
        .map_err(|_| Refusal::new(FailInfo::BadMessageCheck, "the signature does not verify"))
}

/// Opens the EnvelopedData the signed content holds, with the RA's key, and reads what it
/// holds with `read` (the certificate request, for a server).
fn decrypt<T>(
    econtent: &[u8],
    ra: &dyn RaKey,
    single_des: bool,
    read: impl FnOnce(&[u8]) -> Option<T>,
) -> Result<(ContentCipher, T), Refusal> {
    let bad = |why: String| Refusal::new(FailInfo::BadMessageCheck, why);
    let ci = ContentInfo::from_ber(econtent)
        .map_err(|e| bad(format!("the signed content is not a CMS message: {e}")))?;
    if ci.content_type != oids::ENVELOPED_DATA {
        return Err(bad(format!(
            "the signed content is {}, not EnvelopedData",
            ci.content_type
        )));
    }
    let env: EnvelopedBer =
        ber(&ci.content).map_err(|e| bad(format!("the EnvelopedData does not parse: {e}")))?;
    let ra_cert = Certificate::from_der(ra.cert_der())
        .map_err(|e| bad(format!("the RA certificate: {e}")))?;
    let ktri = env
        .recip_infos
        .0
        .iter()
        .find_map(|ri| match ri {
            RecipientInfo::Ktri(k) if names_ra(&k.rid, &ra_cert) => Some(k),
            _ => None,
        })
        .ok_or_else(|| {
            Refusal::new(
                FailInfo::BadCertId,
                "it is not encrypted to this box's SCEP RA certificate (fetch it with GetCACert)",
            )
        })?;
    if ktri.key_enc_alg.oid != oids::RSA_ENCRYPTION {
        return Err(Refusal::new(
            FailInfo::BadAlg,
            format!(
                "key transport {} is not supported (only RSA PKCS#1 v1.5)",
                ktri.key_enc_alg.oid
            ),
        ));
    }
    let eci = &env.encrypted_content;
    let (cipher, iv) = ContentCipher::from_algorithm(&eci.content_enc_alg)
        .map_err(|e| Refusal::new(FailInfo::BadAlg, e))?;
    if cipher == ContentCipher::DesCbc && !single_des {
        return Err(Refusal::new(
            FailInfo::BadAlg,
            "single DES is refused (scep.allow_single_des is off)",
        ));
    }
    let encrypted = eci
        .encrypted_content
        .as_ref()
        .and_then(implicit_octets)
        .ok_or_else(|| bad("the envelope has no encrypted content".into()))?;
    open_content(ra, cipher, ktri.enc_key.as_bytes(), &iv, &encrypted, read)
        .map(|read| (cipher, read))
        .ok_or_else(|| bad(UNREADABLE.into()))
}

/// The part of opening that reads secret bytes: the content key, the content, what it holds.
/// Its failures are one `None` on purpose (see [`UNREADABLE`]).
fn open_content<T>(
    ra: &dyn RaKey,
    cipher: ContentCipher,
    encrypted_key: &[u8],
    iv: &[u8],
    encrypted: &[u8],
    read: impl FnOnce(&[u8]) -> Option<T>,
) -> Option<T> {
    // A wrong key-transport padding gets a key derived from the encrypted key (RFC 3218
    // §2.3.2) and fails below as any other wrong key does.
    let decrypted = ra.decrypt_key(encrypted_key);
    let key = super::implicit_rejection::content_key(
        decrypted.as_deref(),
        ra.rejection_secret(),
        encrypted_key,
        cipher.key_len(),
    );
    let content = cipher.decrypt(&key, iv, encrypted)?;
    read(&content)
}

/// RFC 5652's EnvelopedData with its encrypted content read as it comes: `cms` takes the
/// `[0] IMPLICIT OCTET STRING` in DER's primitive form only, and Go's pkcs7 (micromdm's
/// client) sends the constructed form BER also allows.
#[derive(Sequence)]
struct EnvelopedBer {
    version: CmsVersion,
    #[asn1(
        context_specific = "0",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    originator_info: Option<OriginatorInfo>,
    recip_infos: RecipientInfos,
    encrypted_content: EncryptedContentBer,
    #[asn1(
        context_specific = "1",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    unprotected_attrs: Option<Attributes>,
}

#[derive(Sequence)]
struct EncryptedContentBer {
    content_type: ObjectIdentifier,
    content_enc_alg: AlgorithmIdentifierOwned,
    /// `[0] IMPLICIT OCTET STRING`, primitive or constructed: see [`implicit_octets`].
    encrypted_content: Option<Any>,
}

/// The octets of a `[0] IMPLICIT OCTET STRING`: its value when primitive, the concatenated
/// OCTET STRING segments when constructed (one level, as BER encoders write it).
fn implicit_octets(any: &Any) -> Option<Vec<u8>> {
    match any.tag() {
        Tag::ContextSpecific {
            constructed: false,
            number: TagNumber(0),
        } => Some(any.value().to_vec()),
        Tag::ContextSpecific {
            constructed: true,
            number: TagNumber(0),
        } => {
            let mut out = Vec::new();
            let mut rest = any.value();
            while !rest.is_empty() {
                let (segment, next) = OctetString::from_der_partial(rest).ok()?;
                out.extend_from_slice(segment.as_bytes());
                rest = next;
            }
            Some(out)
        }
        _ => None,
    }
}

fn names_ra(rid: &RecipientIdentifier, ra: &Certificate) -> bool {
    match rid {
        RecipientIdentifier::IssuerAndSerialNumber(isn) => is_issuer_and_serial(isn, ra),
        RecipientIdentifier::SubjectKeyIdentifier(ski) => subject_key_id(ra).as_ref() == Some(ski),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's pkcs7 sends the encrypted content as a constructed `[0]`; DER's primitive form
    /// and BER's constructed one give the same octets, and anything else none.
    #[test]
    fn encrypted_content_is_read_primitive_or_constructed() {
        let primitive = Any::from_der(b"\x80\x06abcdef").unwrap();
        assert_eq!(implicit_octets(&primitive).unwrap(), b"abcdef");
        let constructed = Any::from_ber(b"\xa0\x0a\x04\x03abc\x04\x03def").unwrap();
        assert_eq!(implicit_octets(&constructed).unwrap(), b"abcdef");
        let not_octets = Any::from_ber(b"\xa0\x03\x02\x01\x05").unwrap();
        assert_eq!(implicit_octets(&not_octets), None);
        let other_tag = Any::from_der(b"\x81\x01a").unwrap();
        assert_eq!(implicit_octets(&other_tag), None);
    }
}
