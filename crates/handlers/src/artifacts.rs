//! Build artifacts a run uses but does not make: the newest JAR under an `s3://` prefix, which
//! the EMR Serverless bootstrap engine runs.

use async_trait::async_trait;
use ferry_core::{Error, ErrorCode, Result};

#[async_trait]
pub trait Artifacts: Send + Sync {
    /// `s3://bucket/key` of the most recently modified object under `url` (an `s3://bucket/
    /// prefix` URL) whose key ends with `suffix`; `None` when there is none. Equal times go to
    /// the greater key, so the answer never depends on listing order.
    async fn newest(&self, url: &str, suffix: &str) -> Result<Option<String>>;
}

/// `s3://bucket/some/prefix` → (`bucket`, `some/prefix`).
pub fn split_s3_url(url: &str) -> Result<(&str, &str)> {
    let rest = url.strip_prefix("s3://").unwrap_or_default();
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(Error::new(
            ErrorCode::InvalidSpec,
            format!("{url:?} is not an s3:// URL like \"s3://bucket/jars/\""),
        ));
    }
    Ok((bucket, prefix))
}

pub struct S3Artifacts {
    s3: aws_sdk_s3::Client,
}

impl S3Artifacts {
    pub fn new(s3: aws_sdk_s3::Client) -> S3Artifacts {
        S3Artifacts { s3 }
    }
}

#[async_trait]
impl Artifacts for S3Artifacts {
    async fn newest(&self, url: &str, suffix: &str) -> Result<Option<String>> {
        let (bucket, prefix) = split_s3_url(url)?;
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut best: Option<(i64, u32, String)> = None;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| {
                Error::new(
                    ErrorCode::Retryable,
                    format!(
                        "cannot list {url}: {}",
                        aws_sdk_s3::error::DisplayErrorContext(&err)
                    ),
                )
            })?;
            for object in page.contents() {
                let Some(key) = object.key().filter(|k| k.ends_with(suffix)) else {
                    continue;
                };
                let at = object
                    .last_modified()
                    .map_or((i64::MIN, 0), |t| (t.secs(), t.subsec_nanos()));
                let candidate = (at.0, at.1, key.to_string());
                if best.as_ref().is_none_or(|b| candidate > *b) {
                    best = Some(candidate);
                }
            }
        }
        Ok(best.map(|(_, _, key)| format!("s3://{bucket}/{key}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_split_into_bucket_and_prefix() {
        assert_eq!(split_s3_url("s3://b/jars/").unwrap(), ("b", "jars/"));
        assert_eq!(split_s3_url("s3://b").unwrap(), ("b", ""));
        let err = split_s3_url("b/jars").unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidSpec);
        assert!(err.message().contains("\"b/jars\""), "{err}");
    }
}
