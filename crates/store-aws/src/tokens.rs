//! Merchant tokens at rest: KMS ciphertext in the connection item (the design is in the
//! module doc of `dynamo.rs`, "Tokens are KMS ciphertext").
//!
//! A connection's tokens are sealed together: [`seal`] writes them as one small JSON object
//! (`{"ecwid_token": …, "lightspeed.access_token": …, "lightspeed.refresh_token": …}`, the
//! tokens the connection has) encrypted by one KMS `Encrypt` under the configured key, with
//! the encryption context `{"store_id": "<id>", "attribute": "tokens"}`, into the item's
//! binary attribute `tokens`; each token's own attribute then holds `true` (sealed). A cold
//! read is one `Decrypt` per connection, whatever the number of tokens. A ciphertext copied
//! to another store's item, or into another attribute, does not decrypt.
//!
//! Items written before (one ciphertext per token, each with the encryption context
//! `{"store_id": "<id>", "attribute": "<the token's name>"}`) are still read, one `Decrypt`
//! per token; the next write of the connection seals them the new way. Tokens are far below
//! KMS's 4 KB limit, so no data key and no local cipher is involved.
//!
//! Decrypted plaintexts are cached in the process for [`TokenCipher::DEFAULT_CACHE_TTL`],
//! keyed by (store, attribute, SHA-256 of the ciphertext they came from): a warm container
//! makes no KMS call for a store it served within that time, and a ciphertext it has not
//! seen (tokens refreshed by another container, or an item tampered with) is decrypted by
//! KMS, never answered from the cache. A few ciphertexts per (store, attribute) are kept, so
//! workers that read the item just before and just after a token refresh both find theirs.
//! The same entries let a write of unchanged tokens reuse their ciphertext (no `Encrypt`).

use aws_sdk_dynamodb::primitives::Blob as DynamoBlob;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::operation::decrypt::DecryptError;
use aws_sdk_kms::primitives::Blob;
use els_core::{Secret, StoreError, StoreId};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Item = HashMap<String, AttributeValue>;

/// What a process without the token key (webhook-ingest) reads in place of an encrypted
/// token: not a token, so a call made with it is refused, and
/// [`els_core::ConnectionStore::put_connection`] refuses to store it.
pub const ENCRYPTED_TOKEN_PLACEHOLDER: &str = "kms-encrypted-token-not-decrypted-here";

/// A ciphertext attribute of a connection item; its name is the encryption context's
/// `attribute`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TokenAttribute {
    /// `ecwid_token` (top level).
    EcwidToken,
    /// `lightspeed.access_token` (in the `lightspeed` map).
    LightspeedAccessToken,
    /// `lightspeed.refresh_token` (in the `lightspeed` map; absent for a personal token).
    LightspeedRefreshToken,
    /// `tokens` (top level): all of the connection's tokens in one ciphertext (see the
    /// module doc). Not a token itself, so not in [`Self::ALL`].
    Tokens,
}

/// What a token's own attribute holds once the token is sealed in `tokens`: not a token
/// (a boolean, so a version that reads a token there fails loudly instead of using it).
const SEALED: AttributeValue = AttributeValue::Bool(true);

impl TokenAttribute {
    /// The token attributes (each one token).
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
            Self::Tokens => "tokens",
        }
    }

    /// The top-level attribute and, inside its map, the field.
    fn path(self) -> (&'static str, Option<&'static str>) {
        match self {
            Self::EcwidToken => ("ecwid_token", None),
            Self::LightspeedAccessToken => ("lightspeed", Some("access_token")),
            Self::LightspeedRefreshToken => ("lightspeed", Some("refresh_token")),
            Self::Tokens => ("tokens", None),
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

/// Above this many cached (store, attribute) slots (one per store; three for an item still
/// in the per-token format), expired entries are dropped, and if that is not enough, all of
/// them: the cache only saves KMS calls.
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

/// The connection item's tokens, made ready to store: with a cipher, the non-empty tokens
/// are sealed in one ciphertext (the `tokens` attribute, one KMS `Encrypt`, none when they
/// are unchanged) and each one's own attribute holds [`SEALED`]; without one they stay
/// plain text. A placeholder read by a process without the key is refused either way, so
/// it can never overwrite a token. `item` holds plain-text tokens (a [`Connection`]'s
/// rendering, or an item [`open`]ed first).
///
/// [`Connection`]: els_core::Connection
pub(crate) async fn seal(
    cipher: Option<&TokenCipher>,
    store_id: StoreId,
    item: &mut Item,
) -> Result<(), StoreError> {
    let mut plain: BTreeMap<&'static str, String> = BTreeMap::new();
    for attribute in TokenAttribute::ALL {
        match attribute.slot(item) {
            Some(AttributeValue::S(value)) if value == ENCRYPTED_TOKEN_PLACEHOLDER => {
                return Err(StoreError::Corrupt {
                    key: format!("STORE#{store_id}/CONNECTION"),
                    detail: format!(
                        "{} is the placeholder of a token this process could not decrypt \
                         (it has no token key): refusing to store it",
                        attribute.name()
                    ),
                });
            }
            Some(AttributeValue::S(value)) if !value.is_empty() => {
                plain.insert(attribute.name(), value.clone());
            }
            Some(AttributeValue::B(_)) => {
                return Err(unopened(store_id, attribute));
            }
            Some(v) if *v == SEALED => return Err(unopened(store_id, attribute)),
            _ => {}
        }
    }
    let Some(cipher) = cipher else {
        return Ok(());
    };
    if plain.is_empty() {
        return Ok(());
    }
    // A BTreeMap renders its keys in order: the same tokens are the same plaintext, so an
    // unchanged connection finds its ciphertext in the cache.
    let json = serde_json::to_string(&plain).map_err(|_| StoreError::Corrupt {
        key: format!("STORE#{store_id}/CONNECTION"),
        detail: "the tokens could not be rendered as JSON".into(),
    })?;
    let ciphertext = cipher
        .encrypt(store_id, TokenAttribute::Tokens, &Secret::new(json))
        .await?;
    for attribute in TokenAttribute::ALL {
        if plain.contains_key(attribute.name())
            && let Some(slot) = attribute.slot_mut(item)
        {
            *slot = SEALED;
        }
    }
    item.insert(
        TokenAttribute::Tokens.name().to_string(),
        AttributeValue::B(DynamoBlob::new(ciphertext)),
    );
    Ok(())
}

fn unopened(store_id: StoreId, attribute: TokenAttribute) -> StoreError {
    StoreError::Corrupt {
        key: format!("STORE#{store_id}/CONNECTION"),
        detail: format!(
            "{} is still sealed: the item must be opened before it is sealed again",
            attribute.name()
        ),
    }
}

/// The connection item's tokens, made readable. The sealed `tokens` (one ciphertext for
/// all) and, in items written before, each token's own ciphertext are decrypted (with a
/// cipher; all of a store's at once) or replaced by [`ENCRYPTED_TOKEN_PLACEHOLDER`] (without
/// one, no KMS call). Plain-text tokens (items written before encryption) are left as they
/// are. The `tokens` attribute is removed.
pub(crate) async fn open(
    cipher: Option<&TokenCipher>,
    store_id: StoreId,
    item: &mut Item,
) -> Result<(), StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        key: format!("STORE#{store_id}/CONNECTION"),
        detail,
    };
    let sealed_in_one: Vec<TokenAttribute> = TokenAttribute::ALL
        .into_iter()
        .filter(|attribute| attribute.slot(item) == Some(&SEALED))
        .collect();
    let mut ciphertexts: Vec<(TokenAttribute, Vec<u8>)> = Vec::new();
    match item.remove(TokenAttribute::Tokens.name()) {
        Some(AttributeValue::B(blob)) => {
            ciphertexts.push((TokenAttribute::Tokens, blob.into_inner()));
        }
        None if sealed_in_one.is_empty() => {}
        _ => {
            return Err(corrupt(
                "the tokens attribute is missing or not binary".to_string(),
            ));
        }
    }
    ciphertexts.extend(TokenAttribute::ALL.into_iter().filter_map(|attribute| {
        match attribute.slot(item) {
            Some(AttributeValue::B(blob)) => Some((attribute, blob.as_ref().to_vec())),
            _ => None,
        }
    }));
    let opened: Vec<(TokenAttribute, String)> = match cipher {
        None => sealed_in_one
            .iter()
            .copied()
            .chain(
                ciphertexts
                    .iter()
                    .map(|(attribute, _)| *attribute)
                    .filter(|a| *a != TokenAttribute::Tokens),
            )
            .map(|attribute| (attribute, ENCRYPTED_TOKEN_PLACEHOLDER.to_string()))
            .collect(),
        Some(cipher) => {
            let results =
                futures::future::join_all(ciphertexts.iter().map(|(attribute, ciphertext)| {
                    cipher.decrypt(store_id, *attribute, ciphertext)
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
            let mut opened = Vec::new();
            for ((attribute, _), plaintext) in ciphertexts.iter().zip(results) {
                let plaintext = plaintext?;
                if *attribute != TokenAttribute::Tokens {
                    opened.push((*attribute, plaintext.expose().to_string()));
                    continue;
                }
                // The decrypted text is never put in an error: it holds the tokens.
                let mut tokens: BTreeMap<String, String> = serde_json::from_str(plaintext.expose())
                    .map_err(|_| {
                        corrupt("the sealed tokens are not a JSON object of strings".into())
                    })?;
                for sealed in &sealed_in_one {
                    let token = tokens.remove(sealed.name()).ok_or_else(|| {
                        corrupt(format!("{} is not in the sealed tokens", sealed.name()))
                    })?;
                    opened.push((*sealed, token));
                }
            }
            opened
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

/// The token attributes of a connection item that hold their own ciphertext (the format
/// written before the tokens were sealed together).
pub(crate) fn per_token_ciphertexts(item: &Item) -> Vec<TokenAttribute> {
    TokenAttribute::ALL
        .into_iter()
        .filter(|attribute| matches!(attribute.slot(item), Some(AttributeValue::B(_))))
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

    fn sealed_item(refresh: AttributeValue) -> Item {
        let mut item = item(SEALED, SEALED, refresh);
        item.insert(
            "tokens".into(),
            AttributeValue::B(DynamoBlob::new(vec![9, 9, 9])),
        );
        item
    }

    #[tokio::test]
    async fn without_a_cipher_sealed_tokens_read_as_placeholders_for_the_tokens_there_are() {
        let store = StoreId::literal(42);
        // A personal Lightspeed token: no refresh token sealed.
        let mut read = sealed_item(AttributeValue::Null(true));
        open(None, store, &mut read).await.unwrap();
        let placeholder = s(ENCRYPTED_TOKEN_PLACEHOLDER);
        assert_eq!(TokenAttribute::EcwidToken.slot(&read), Some(&placeholder));
        assert_eq!(
            TokenAttribute::LightspeedAccessToken.slot(&read),
            Some(&placeholder)
        );
        assert_eq!(
            TokenAttribute::LightspeedRefreshToken.slot(&read),
            Some(&AttributeValue::Null(true)),
            "a token the connection does not have stays absent"
        );
        assert!(
            !read.contains_key("tokens"),
            "the ciphertext is not a field"
        );
        // Never written back.
        let err = seal(None, store, &mut read).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");

        let mut oauth = sealed_item(SEALED);
        open(None, store, &mut oauth).await.unwrap();
        assert_eq!(
            TokenAttribute::LightspeedRefreshToken.slot(&oauth),
            Some(&placeholder)
        );
    }

    #[tokio::test]
    async fn a_sealed_mark_without_its_ciphertext_and_an_unopened_item_are_refused() {
        let store = StoreId::literal(42);
        let mut lost = sealed_item(AttributeValue::Null(true));
        lost.remove("tokens");
        let err = open(None, store, &mut lost).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { detail, .. } if detail.contains("tokens attribute")),
            "{err:?}"
        );
        // Sealing expects plain text: still-sealed or per-token ciphertext is not sealed
        // again (it would be lost).
        for mut unopened in [
            sealed_item(AttributeValue::Null(true)),
            item(
                AttributeValue::B(DynamoBlob::new(vec![1])),
                s("at"),
                AttributeValue::Null(true),
            ),
        ] {
            let err = seal(None, store, &mut unopened).await.unwrap_err();
            assert!(
                matches!(&err, StoreError::Corrupt { detail, .. } if detail.contains("opened")),
                "{err:?}"
            );
        }
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
        let sealed = TokenCipher::context(StoreId::literal(7), TokenAttribute::Tokens);
        assert_eq!(sealed["attribute"], "tokens");
        assert!(!TokenAttribute::ALL.contains(&TokenAttribute::Tokens));
    }
}
