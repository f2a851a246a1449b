//! Secrets, read once at init: the only network I/O a function does before its first
//! invocation.
//!
//! The Ecwid app's `client_secret` lives in an SSM **SecureString** parameter; the function
//! gets the parameter's *name* (`ECWID_CLIENT_SECRET_PARAMETER`), never the value, so the
//! secret is in neither the template nor the function's configuration. Its role may call
//! `ssm:GetParameter` on that one parameter. A parameter encrypted with the AWS managed key
//! (`alias/aws/ssm`) needs no KMS permission of ours; a customer managed key needs
//! `kms:Decrypt` on it (the template's `EcwidClientSecretKmsKeyArn`).

use crate::config::ClientSecretSource;
use aws_sdk_ssm::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_ssm::types::ParameterType;
use els_core::Secret;
use thiserror::Error;

/// Why the secret could not be loaded. Messages name the parameter, never its value.
#[derive(Debug, Error)]
pub enum SecretError {
    #[error(
        "SSM parameter {name} does not exist: create it as a SecureString holding the app's client_secret (the Ecwid app's for ECWID_CLIENT_SECRET_PARAMETER, the Lightspeed app's for LIGHTSPEED_CLIENT_SECRET_PARAMETER)"
    )]
    NotFound { name: String },
    #[error(
        "SSM parameter {name} is a {kind} parameter: store the client_secret as a SecureString"
    )]
    NotSecureString { name: String, kind: String },
    #[error("SSM parameter {name} is empty")]
    Empty { name: String },
    #[error("reading SSM parameter {name} failed: {detail}")]
    Unavailable { name: String, detail: String },
}

/// An app's `client_secret` (Ecwid's, or Lightspeed's OAuth app) from where the configuration says: one
/// `GetParameter(WithDecryption)` call, or the local override as it is.
pub async fn load_client_secret(
    source: &ClientSecretSource,
    ssm: impl FnOnce() -> aws_sdk_ssm::Client,
) -> Result<Secret, SecretError> {
    match source {
        ClientSecretSource::Plain(secret) => Ok(secret.clone()),
        ClientSecretSource::SsmParameter(name) => read_secure_string(&ssm(), name).await,
    }
}

/// Reads a SecureString parameter, decrypted. A parameter of another type is refused: a
/// plain `String` would show the secret to anyone allowed to list parameters.
pub async fn read_secure_string(
    ssm: &aws_sdk_ssm::Client,
    name: &str,
) -> Result<Secret, SecretError> {
    let answer = ssm
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| {
            if e.as_service_error()
                .is_some_and(|s| s.is_parameter_not_found())
            {
                return SecretError::NotFound { name: name.into() };
            }
            let code = e.code().unwrap_or("no error code").to_string();
            SecretError::Unavailable {
                name: name.into(),
                detail: format!("{code}: {}", DisplayErrorContext(&e)),
            }
        })?;
    let parameter = answer.parameter.ok_or_else(|| SecretError::Unavailable {
        name: name.into(),
        detail: "the answer holds no parameter".into(),
    })?;
    match parameter.r#type {
        Some(ParameterType::SecureString) => {}
        other => {
            return Err(SecretError::NotSecureString {
                name: name.into(),
                kind: other.map_or_else(|| "untyped".to_string(), |t| t.as_str().to_string()),
            });
        }
    }
    match parameter.value {
        Some(value) if !value.trim().is_empty() => Ok(Secret::new(value)),
        _ => Err(SecretError::Empty { name: name.into() }),
    }
}
