//! Merchant tokens at rest: KMS ciphertext in the connection item (the design is in the
//! module doc of `dynamo.rs`, "Tokens are KMS ciphertext").
//!
//! [`TokenCipher`] encrypts one token with one KMS `Encrypt` under the configured key, with
//! the encryption context `{"store_id": "<id>", "attribute": "<name>"}`, and decrypts it with
//! `Decrypt` under the same key and context: a ciphertext copied to another store's item, or
//! to another attribute, does not decrypt. Tokens are far below KMS's 4 KB limit, so no data
//! key and no local cipher is involved.
//!
//! Decrypted tokens are cached in the process for [`TokenCipher::DEFAULT_CACHE_TTL`], keyed
//! by (store, attribute, SHA-256 of the ciphertext they came from): a warm container makes
//! no KMS call for a store it served within that time, and a ciphertext it has not seen (a
//! token refreshed by another container, or an item tampered with) is decrypted by KMS,
//! never answered from the cache. A few ciphertexts per (store, attribute) are kept, so
//! workers that read the item just before and just after a token refresh both find theirs.
//! The same entries let a write of an unchanged token reuse its ciphertext (no `Encrypt`).

use aws_sdk_dynamodb::primitives::Blob as DynamoBlob;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::operation::decrypt::DecryptError;
use aws_sdk_kms::primitives::Blob;
use els_core::{Secret, StoreError, StoreId};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Item = HashMap<String, AttributeValue>;

/// What a process without the token key (webhook-ingest) reads in place of an encrypted
/// token: not a token, so a call made with it is refused, and
/// [`els_core::ConnectionStore::put_connection`] refuses to store it.
pub const ENCRYPTED_TOKEN_PLACEHOLDER: &str = "kms-encrypted-token-not-decrypted-here";

/// One token attribute of a connection item; its name is the encryption context's
/// `attribute`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TokenAttribute {
    /// `ecwid_token` (top level).
    EcwidToken,
    /// `lightspeed.access_token` (in the `lightspeed` map).
    LightspeedAccessToken,
    /// `lightspeed.refresh_token` (in the `lightspeed` map; absent for a personal token).
    LightspeedRefreshToken,
}

impl TokenAttribute {
    pub const ALL: [Self; 3] = [
        Self::EcwidToken,
        Self::LightspeedAccessToken,
        Self::LightspeedRefreshToken,
    ];

    /// The attribute's path in the item, as the encryption context names it.
    pub fn name(self) -> &'static str {
        match self {
            Self::EcwidToken => "ecwid_token",
            Self::LightspeedAccessToken => "lightspeed.access_token",
            Self::LightspeedRefreshToken => "lightspeed.refresh_token",
        }
    }

    /// The top-level attribute and, inside its map, the field.
    fn path(self) -> (&'static str, Option<&'static str>) {
        match self {
            Self::EcwidToken => ("ecwid_token", None),
            Self::LightspeedAccessToken => ("lightspeed", Some("access_token")),
            Self::LightspeedRefreshToken => ("lightspeed", Some("refresh_token")),
        }
    }

    fn slot(self, item: &Item) -> Option<&AttributeValue> {
        match self.path() {
            (top, None) => item.get(top),
            (top, Some(field)) => item.get(top)?.as_m().ok()?.get(field),
        }
    }

    fn slot_mut(self, item: &mut Item) -> Option<&mut AttributeValue> {
        match self.path() {
            (top, None) => item.get_mut(top),
            (top, Some(field)) => match item.get_mut(top)? {
                AttributeValue::M(map) => map.get_mut(field),
                _ => None,
            },
        }
    }
}

/// KMS calls made by a [`TokenCipher`] (and its clones) since it was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KmsCalls {
    pub encrypt: u64,
    pub decrypt: u64,
}

impl KmsCalls {
    pub fn total(&self) -> u64 {
        self.encrypt + self.decrypt
    }
}

/// Encrypts and decrypts connection tokens with one KMS key (see the module doc). Clones
/// share the client, the cache and the call counts.
#[derive(Clone)]
pub struct TokenCipher {
    inner: Arc<Inner>,
}

struct Inner {
    client: aws_sdk_kms::Client,
    key_id: String,
    ttl: Duration,
    cache: Mutex<HashMap<(StoreId, TokenAttribute), Vec<Cached>>>,
    encrypts: AtomicU64,
    decrypts: AtomicU64,
}

/// A token and the ciphertext it was read from (or written as).
struct Cached {
    digest: [u8; 32],
    ciphertext: Vec<u8>,
    plaintext: Secret,
    at: Instant,
}

impl fmt::Debug for TokenCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCipher")
            .field("key_id", &self.inner.key_id)
            .field("cache_ttl", &self.inner.ttl)
            .finish_non_exhaustive()
    }
}

/// Above this many cached (store, attribute) slots (three per store), expired entries are
/// dropped, and if that is not enough, all of them: the cache only saves KMS calls.
const MAX_CACHED: usize = 30_000;
/// Ciphertexts kept per (store, attribute): the newest ones.
const PER_SLOT: usize = 4;

fn digest(ciphertext: &[u8]) -> [u8; 32] {
    Sha256::digest(ciphertext).into()
}

impl TokenCipher {
    /// How long a decrypted token is used without asking KMS again.
    pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(15 * 60);

    /// Tokens under `key_id` (a key id, key ARN, alias name or alias ARN). No network I/O.
    pub fn new(client: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        Self::build(client, key_id.into(), Self::DEFAULT_CACHE_TTL)
    }

    fn build(client: aws_sdk_kms::Client, key_id: String, ttl: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                key_id,
                ttl,
                cache: Mutex::new(HashMap::new()),
                encrypts: AtomicU64::new(0),
                decrypts: AtomicU64::new(0),
            }),
        }
    }

    /// The same key with another cache lifetime (zero: every read asks KMS), an empty cache
    /// and no calls counted.
    pub fn with_cache_ttl(self, ttl: Duration) -> Self {
        Self::build(self.inner.client.clone(), self.inner.key_id.clone(), ttl)
    }

    pub fn key_id(&self) -> &str {
        &self.inner.key_id
    }

    pub fn client(&self) -> &aws_sdk_kms::Client {
        &self.inner.client
    }

    /// KMS calls made so far.
    pub fn kms_calls(&self) -> KmsCalls {
        KmsCalls {
            encrypt: self.inner.encrypts.load(Ordering::Relaxed),
            decrypt: self.inner.decrypts.load(Ordering::Relaxed),
        }
    }

    /// Forgets every cached token (the next read of each asks KMS).
    pub fn clear_cache(&self) {
        self.cache().clear();
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<(StoreId, TokenAttribute), Vec<Cached>>> {
        self.inner
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn fresh(&self, cached: &Cached) -> bool {
        cached.at.elapsed() < self.inner.ttl
    }

    fn remember(
        &self,
        store_id: StoreId,
        attribute: TokenAttribute,
        ciphertext: Vec<u8>,
        plaintext: Secret,
    ) {
        if self.inner.ttl.is_zero() {
            return;
        }
        let ttl = self.inner.ttl;
        let mut cache = self.cache();
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, slot| {
                slot.retain(|c| c.at.elapsed() < ttl);
                !slot.is_empty()
            });
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        let hash = digest(&ciphertext);
        let slot = cache.entry((store_id, attribute)).or_default();
        slot.retain(|c| c.digest != hash && c.at.elapsed() < ttl);
        if slot.len() >= PER_SLOT {
            slot.remove(0);
        }
        slot.push(Cached {
            digest: hash,
            ciphertext,
            plaintext,
            at: Instant::now(),
        });
    }

    fn context(store_id: StoreId, attribute: TokenAttribute) -> HashMap<String, String> {
        HashMap::from([
            ("store_id".to_string(), store_id.to_string()),
            ("attribute".to_string(), attribute.name().to_string()),
        ])
    }

    /// The ciphertext of `plaintext` as `store_id`'s `attribute`: the cached one when the
    /// token is unchanged, else one KMS `Encrypt`.
    pub async fn encrypt(
        &self,
        store_id: StoreId,
        attribute: TokenAttribute,
        plaintext: &Secret,
    ) -> Result<Vec<u8>, StoreError> {
        let reused = self.cache().get(&(store_id, attribute)).and_then(|slot| {
            slot.iter()
                .rev()
                .find(|c| self.fresh(c) && c.plaintext == *plaintext)
                .map(|c| c.ciphertext.clone())
        });
        if let Some(ciphertext) = reused {
            return Ok(ciphertext);
        }
        self.inner.encrypts.fetch_add(1, Ordering::Relaxed);
        let out = self
            .inner
            .client
            .encrypt()
            .key_id(&self.inner.key_id)
            .plaintext(Blob::new(plaintext.expose().as_bytes()))
            .set_encryption_context(Some(Self::context(store_id, attribute)))
            .send()
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "KMS Encrypt of {} for store {store_id} with key {}: {}",
                    attribute.name(),
                    self.inner.key_id,
                    DisplayErrorContext(&e)
                ))
            })?;
        let ciphertext = out
            .ciphertext_blob
            .ok_or_else(|| {
                StoreError::Unavailable("KMS Encrypt answered without a ciphertext".into())
            })?
            .into_inner();
        self.remember(store_id, attribute, ciphertext.clone(), plaintext.clone());
        Ok(ciphertext)
    }

    /// The token `ciphertext` holds as `store_id`'s `attribute`: the cached one when the
    /// ciphertext is the one it came from, else one KMS `Decrypt`.
    /// [`StoreError::Undecryptable`] when KMS refuses it for good (another store's or
    /// attribute's ciphertext, damaged, another key, the key disabled or deleted);
    /// [`StoreError::Unavailable`] when it may work later (throttling, network, a denied
    /// permission, which is a deployment to fix).
    pub async fn decrypt(
        &self,
        store_id: StoreId,
        attribute: TokenAttribute,
        ciphertext: &[u8],
    ) -> Result<Secret, StoreError> {
        let hash = digest(ciphertext);
        let cached = self.cache().get(&(store_id, attribute)).and_then(|slot| {
            slot.iter()
                .find(|c| self.fresh(c) && c.digest == hash)
                .map(|c| c.plaintext.clone())
        });
        if let Some(plaintext) = cached {
            return Ok(plaintext);
        }
        self.inner.decrypts.fetch_add(1, Ordering::Relaxed);
        let answer = self
            .inner
            .client
            .decrypt()
            .key_id(&self.inner.key_id)
            .ciphertext_blob(Blob::new(ciphertext))
            .set_encryption_context(Some(Self::context(store_id, attribute)))
            .send()
            .await;
        let out = match answer {
            Ok(out) => out,
            Err(err) => return Err(decrypt_error(store_id, attribute, &err)),
        };
        let plaintext = out
            .plaintext
            .map(Blob::into_inner)
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| StoreError::Undecryptable {
                store_id,
                version: 0,
                go_live_at: None,
                detail: format!("{} decrypted to no text", attribute.name()),
            })?;
        let plaintext = Secret::new(plaintext);
        self.remember(store_id, attribute, ciphertext.to_vec(), plaintext.clone());
        Ok(plaintext)
    }
}

fn decrypt_error<R: fmt::Debug>(
    store_id: StoreId,
    attribute: TokenAttribute,
    err: &SdkError<DecryptError, R>,
) -> StoreError {
    let Some(service) = err.as_service_error() else {
        return StoreError::Unavailable(format!(
            "KMS Decrypt of {} for store {store_id}: {}",
            attribute.name(),
            DisplayErrorContext(err)
        ));
    };
    let code = service.code().unwrap_or("unknown");
    let message = service.message().unwrap_or_default();
    let permanent = service.is_invalid_ciphertext_exception()
        || service.is_incorrect_key_exception()
        || service.is_disabled_exception()
        || service.is_kms_invalid_state_exception()
        || service.is_not_found_exception()
        || service.is_invalid_key_usage_exception();
    if !permanent {
        return StoreError::Unavailable(format!(
            "KMS Decrypt of {} for store {store_id}: {code} {message}",
            attribute.name()
        ));
    }
    let why = if service.is_invalid_ciphertext_exception() {
        "the ciphertext was not written for this store and attribute, or is damaged"
    } else if service.is_incorrect_key_exception() {
        "the ciphertext is under another KMS key"
    } else {
        "the KMS key is disabled, pending deletion or gone"
    };
    StoreError::Undecryptable {
        store_id,
        version: 0,
        go_live_at: None,
        detail: format!(
            "KMS refused to decrypt {} ({code}{}{message}): {why}",
            attribute.name(),
            if message.is_empty() { "" } else { ": " }
        ),
    }
}

/// The connection item's tokens, made ready to store: with a cipher, each non-empty token is
/// replaced by its ciphertext (a binary attribute); without one they stay plain text. A
/// placeholder read by a process without the key is refused either way, so it can never
/// overwrite a token.
pub(crate) async fn seal(
    cipher: Option<&TokenCipher>,
    store_id: StoreId,
    item: &mut Item,
) -> Result<(), StoreError> {
    let mut plain = Vec::new();
    for attribute in TokenAttribute::ALL {
        if let Some(AttributeValue::S(value)) = attribute.slot(item) {
            if value == ENCRYPTED_TOKEN_PLACEHOLDER {
                return Err(StoreError::Corrupt {
                    key: format!("STORE#{store_id}/CONNECTION"),
                    detail: format!(
                        "{} is the placeholder of a token this process could not decrypt \
                         (it has no token key): refusing to store it",
                        attribute.name()
                    ),
                });
            }
            if !value.is_empty() {
                plain.push((attribute, Secret::new(value.clone())));
            }
        }
    }
    let Some(cipher) = cipher else {
        return Ok(());
    };
    let sealed = futures::future::try_join_all(plain.iter().map(|(attribute, token)| async {
        let ciphertext = cipher.encrypt(store_id, *attribute, token).await?;
        Ok::<_, StoreError>((*attribute, ciphertext))
    }))
    .await?;
    for (attribute, ciphertext) in sealed {
        if let Some(slot) = attribute.slot_mut(item) {
            *slot = AttributeValue::B(DynamoBlob::new(ciphertext));
        }
    }
    Ok(())
}

/// The connection item's tokens, made readable: each ciphertext is decrypted (with a
/// cipher) or replaced by [`ENCRYPTED_TOKEN_PLACEHOLDER`] (without one, no KMS call). Plain
/// text tokens (items written before encryption) are left as they are. The three
/// decryptions of a store run at once.
pub(crate) async fn open(
    cipher: Option<&TokenCipher>,
    store_id: StoreId,
    item: &mut Item,
) -> Result<(), StoreError> {
    let sealed: Vec<(TokenAttribute, Vec<u8>)> = TokenAttribute::ALL
        .into_iter()
        .filter_map(|attribute| match attribute.slot(item) {
            Some(AttributeValue::B(blob)) => Some((attribute, blob.as_ref().to_vec())),
            _ => None,
        })
        .collect();
    let opened: Vec<(TokenAttribute, String)> = match cipher {
        None => sealed
            .into_iter()
            .map(|(attribute, _)| (attribute, ENCRYPTED_TOKEN_PLACEHOLDER.to_string()))
            .collect(),
        Some(cipher) => {
            let results =
                futures::future::join_all(sealed.iter().map(|(attribute, ciphertext)| async {
                    cipher
                        .decrypt(store_id, *attribute, ciphertext)
                        .await
                        .map(|token| (*attribute, token.expose().to_string()))
                }))
                .await;
            // A refusal for good is reported before a passing failure: retrying would not
            // help the store.
            if let Some(Err(StoreError::Undecryptable { detail, .. })) = results
                .iter()
                .find(|r| matches!(r, Err(StoreError::Undecryptable { .. })))
            {
                return Err(StoreError::Undecryptable {
                    store_id,
                    version: stored_version(item),
                    go_live_at: stored_go_live(item),
                    detail: detail.clone(),
                });
            }
            results.into_iter().collect::<Result<_, _>>()?
        }
    };
    for (attribute, token) in opened {
        if let Some(slot) = attribute.slot_mut(item) {
            *slot = AttributeValue::S(token);
        }
    }
    Ok(())
}

/// The item's `version` (0 when unreadable).
fn stored_version(item: &Item) -> u64 {
    item.get("version")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_default()
}

/// The item's `go_live_at` (RFC 3339), if it has one.
fn stored_go_live(item: &Item) -> Option<chrono::DateTime<chrono::Utc>> {
    let text = item.get("go_live_at")?.as_s().ok()?;
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// The token attributes of a connection item stored as plain text (non-empty strings).
pub(crate) fn plain_tokens(item: &Item) -> Vec<TokenAttribute> {
    TokenAttribute::ALL
        .into_iter()
        .filter(
            |attribute| matches!(attribute.slot(item), Some(AttributeValue::S(v)) if !v.is_empty()),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(ecwid: AttributeValue, access: AttributeValue, refresh: AttributeValue) -> Item {
        HashMap::from([
            ("ecwid_token".to_string(), ecwid),
            (
                "lightspeed".to_string(),
                AttributeValue::M(HashMap::from([
                    ("access_token".to_string(), access),
                    ("refresh_token".to_string(), refresh),
                ])),
            ),
        ])
    }

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    #[tokio::test]
    async fn without_a_cipher_ciphertext_reads_as_a_placeholder_that_cannot_be_written_back() {
        let store = StoreId::literal(42);
        let mut read = item(
            AttributeValue::B(DynamoBlob::new(vec![1, 2, 3])),
            s("plain-access"),
            AttributeValue::Null(true),
        );
        open(None, store, &mut read).await.unwrap();
        assert_eq!(
            TokenAttribute::EcwidToken.slot(&read),
            Some(&s(ENCRYPTED_TOKEN_PLACEHOLDER))
        );
        assert_eq!(
            TokenAttribute::LightspeedAccessToken.slot(&read),
            Some(&s("plain-access"))
        );
        assert_eq!(
            plain_tokens(&read),
            vec![
                TokenAttribute::EcwidToken,
                TokenAttribute::LightspeedAccessToken
            ]
        );
        let err = seal(None, store, &mut read).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { detail, .. } if detail.contains("ecwid_token")),
            "{err:?}"
        );
        // Plain text without a cipher is stored as it is (tables from before encryption).
        let mut plain = item(s("secret_1"), s("at"), s(""));
        seal(None, store, &mut plain).await.unwrap();
        assert_eq!(plain, item(s("secret_1"), s("at"), s("")));
    }

    #[test]
    fn attribute_names_are_the_encryption_context() {
        let names: Vec<_> = TokenAttribute::ALL.iter().map(|a| a.name()).collect();
        assert_eq!(
            names,
            [
                "ecwid_token",
                "lightspeed.access_token",
                "lightspeed.refresh_token"
            ]
        );
        let context =
            TokenCipher::context(StoreId::literal(7), TokenAttribute::LightspeedRefreshToken);
        assert_eq!(context["store_id"], "7");
        assert_eq!(context["attribute"], "lightspeed.refresh_token");
    }
}
