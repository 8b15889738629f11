//! Where chunk objects go: the [`ObjectSink`] port with a local-directory adapter (benchmarks,
//! tests, local runs) and an S3 adapter (multipart upload with bounded memory).
//!
//! An upload is all or nothing: [`ObjectUpload::finish`] makes the object visible under its key,
//! [`ObjectUpload::abort`] leaves nothing behind (the local adapter writes a hidden temporary file
//! and renames it; S3 aborts the multipart upload). Writing the same key again replaces the
//! object, which is what makes a retried chunk overwrite its own object.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use tokio::io::AsyncWriteExt;

/// S3's smallest part (except the last); also the size below which one PutObject is used.
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("object {key}: {message}")]
    Io {
        key: String,
        message: String,
        #[source]
        source: std::io::Error,
    },
    #[error("object {key}: S3 {operation} failed")]
    S3 {
        key: String,
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("object key \"{0}\" is not a safe relative path")]
    BadKey(String),
}

/// Stores objects by key.
#[async_trait]
pub trait ObjectSink: Send + Sync {
    /// Starts writing the object `key`; nothing is visible until `finish`.
    async fn create(&self, key: &str) -> Result<Box<dyn ObjectUpload>, SinkError>;

    /// Writes a small object at once (manifests, chunk lists).
    async fn put(&self, key: &str, body: Bytes) -> Result<(), SinkError> {
        let mut upload = self.create(key).await?;
        if let Err(err) = upload.write(body).await {
            let _ = upload.abort().await;
            return Err(err);
        }
        upload.finish().await
    }
}

/// One object being written.
#[async_trait]
pub trait ObjectUpload: Send {
    async fn write(&mut self, data: Bytes) -> Result<(), SinkError>;
    /// Makes the object visible under its key, replacing any previous one.
    async fn finish(self: Box<Self>) -> Result<(), SinkError>;
    /// Discards everything written; no object and no partial upload remains.
    async fn abort(self: Box<Self>) -> Result<(), SinkError>;
}

// ---- local directory -------------------------------------------------------------------------

/// Objects as files under a root directory; the key is the relative path.
#[derive(Debug, Clone)]
pub struct LocalDirSink {
    root: PathBuf,
}

impl LocalDirSink {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalDirSink { root: root.into() }
    }

    pub fn path_of(&self, key: &str) -> Result<PathBuf, SinkError> {
        let relative = Path::new(key);
        let safe = !key.is_empty()
            && relative
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !safe {
            return Err(SinkError::BadKey(key.to_owned()));
        }
        Ok(self.root.join(relative))
    }
}

struct LocalUpload {
    key: String,
    temp: PathBuf,
    path: PathBuf,
    file: tokio::io::BufWriter<tokio::fs::File>,
}

fn io_error(key: &str, message: &str, source: std::io::Error) -> SinkError {
    SinkError::Io {
        key: key.to_owned(),
        message: message.to_owned(),
        source,
    }
}

#[async_trait]
impl ObjectSink for LocalDirSink {
    async fn create(&self, key: &str) -> Result<Box<dyn ObjectUpload>, SinkError> {
        let path = self.path_of(key)?;
        let dir = path.parent().expect("a joined path has a parent");
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| io_error(key, "cannot create its directory", e))?;
        let name = path
            .file_name()
            .expect("a safe key names a file")
            .to_string_lossy();
        let temp = dir.join(format!(".{name}.{}.partial", ulid::Ulid::new()));
        let file = tokio::fs::File::create(&temp)
            .await
            .map_err(|e| io_error(key, "cannot create a temporary file", e))?;
        Ok(Box::new(LocalUpload {
            key: key.to_owned(),
            temp,
            path,
            file: tokio::io::BufWriter::with_capacity(1 << 20, file),
        }))
    }
}

#[async_trait]
impl ObjectUpload for LocalUpload {
    async fn write(&mut self, data: Bytes) -> Result<(), SinkError> {
        self.file
            .write_all(&data)
            .await
            .map_err(|e| io_error(&self.key, "write failed", e))
    }

    async fn finish(mut self: Box<Self>) -> Result<(), SinkError> {
        let result = async {
            self.file.flush().await?;
            self.file.get_ref().sync_all().await?;
            tokio::fs::rename(&self.temp, &self.path).await
        }
        .await;
        if let Err(err) = result {
            let _ = tokio::fs::remove_file(&self.temp).await;
            return Err(io_error(&self.key, "cannot complete the file", err));
        }
        Ok(())
    }

    async fn abort(self: Box<Self>) -> Result<(), SinkError> {
        drop(self.file);
        match tokio::fs::remove_file(&self.temp).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io_error(&self.key, "cannot remove the temporary file", e))
            }
            _ => Ok(()),
        }
    }
}

// ---- S3 ---------------------------------------------------------------------------------------

/// Objects in an S3 bucket under a key prefix.
#[derive(Debug, Clone)]
pub struct S3Sink {
    client: aws_sdk_s3::Client,
    bucket: String,
    part_size: usize,
}

impl S3Sink {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        S3Sink {
            client,
            bucket: bucket.into(),
            part_size: DEFAULT_PART_SIZE,
        }
    }

    /// Parts of this many bytes (at least S3's 5 MiB minimum); memory per upload is one part.
    pub fn with_part_size(mut self, part_size: usize) -> Self {
        self.part_size = part_size.max(5 * 1024 * 1024);
        self
    }
}

struct S3Upload {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    part_size: usize,
    buffer: Vec<u8>,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
}

fn s3_error(
    key: &str,
    operation: &'static str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> SinkError {
    SinkError::S3 {
        key: key.to_owned(),
        operation,
        source: Box::new(source),
    }
}

#[async_trait]
impl ObjectSink for S3Sink {
    async fn create(&self, key: &str) -> Result<Box<dyn ObjectUpload>, SinkError> {
        Ok(Box::new(S3Upload {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            part_size: self.part_size,
            buffer: Vec::new(),
            upload_id: None,
            parts: Vec::new(),
        }))
    }
}

impl S3Upload {
    async fn upload_part(&mut self, body: Vec<u8>) -> Result<(), SinkError> {
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let created = self
                    .client
                    .create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .send()
                    .await
                    .map_err(|e| s3_error(&self.key, "CreateMultipartUpload", e))?;
                let id = created.upload_id().unwrap_or_default().to_owned();
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number = self.parts.len() as i32 + 1;
        let part = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| s3_error(&self.key, "UploadPart", e))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(part.e_tag().map(str::to_owned))
                .build(),
        );
        Ok(())
    }

    async fn finish_inner(&mut self) -> Result<(), SinkError> {
        let rest = std::mem::take(&mut self.buffer);
        if self.upload_id.is_none() {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .body(ByteStream::from(rest))
                .send()
                .await
                .map_err(|e| s3_error(&self.key, "PutObject", e))?;
            return Ok(());
        }
        if !rest.is_empty() {
            self.upload_part(rest).await?;
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(self.upload_id.clone().unwrap_or_default())
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(std::mem::take(&mut self.parts)))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| s3_error(&self.key, "CompleteMultipartUpload", e))?;
        Ok(())
    }

    async fn abort_inner(&mut self) -> Result<(), SinkError> {
        self.buffer = Vec::new();
        if let Some(upload_id) = self.upload_id.take() {
            self.client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(upload_id)
                .send()
                .await
                .map_err(|e| s3_error(&self.key, "AbortMultipartUpload", e))?;
        }
        Ok(())
    }
}

#[async_trait]
impl ObjectUpload for S3Upload {
    async fn write(&mut self, data: Bytes) -> Result<(), SinkError> {
        self.buffer.extend_from_slice(&data);
        if self.buffer.len() >= self.part_size {
            let part = std::mem::replace(&mut self.buffer, Vec::with_capacity(self.part_size));
            self.upload_part(part).await?;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<(), SinkError> {
        if let Err(err) = self.finish_inner().await {
            let _ = self.abort_inner().await;
            return Err(err);
        }
        Ok(())
    }

    async fn abort(mut self: Box<Self>) -> Result<(), SinkError> {
        self.abort_inner().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_objects_appear_only_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LocalDirSink::new(dir.path());
        let mut upload = sink.create("runs/r/a.json.gz").await.unwrap();
        upload.write(Bytes::from_static(b"hello ")).await.unwrap();
        upload.write(Bytes::from_static(b"world")).await.unwrap();
        let path = dir.path().join("runs/r/a.json.gz");
        assert!(!path.exists());
        upload.finish().await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world");

        // A retry overwrites; an aborted one leaves the old object and no temporary file.
        sink.put("runs/r/a.json.gz", Bytes::from_static(b"again"))
            .await
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"again");
        let mut upload = sink.create("runs/r/b.json.gz").await.unwrap();
        upload.write(Bytes::from_static(b"partial")).await.unwrap();
        upload.abort().await.unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path().join("runs/r"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["a.json.gz"]);

        for bad in ["", "/etc/passwd", "../x", "a/../../x"] {
            assert!(matches!(sink.create(bad).await, Err(SinkError::BadKey(_))));
        }
    }
}
