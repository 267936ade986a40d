//! Picks the uploaded `file` out of a multipart/form-data body.

use std::convert::Infallible;

use bytes::Bytes;

/// The form field that carries the uploaded file.
pub const FILE_FIELD: &str = "file";

#[derive(Debug, PartialEq, Eq)]
pub enum MultipartError {
    /// The body is not multipart/form-data (415).
    NotMultipart,
    /// The body does not parse as multipart (400); the text says why.
    Malformed(String),
    /// No `file` field in the form (400).
    MissingFile,
}

impl std::fmt::Display for MultipartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MultipartError::NotMultipart => {
                write!(
                    f,
                    "the upload must be multipart/form-data with a `file` field"
                )
            }
            MultipartError::Malformed(why) => write!(f, "malformed multipart body: {why}"),
            MultipartError::MissingFile => {
                write!(f, "the multipart form has no `file` field")
            }
        }
    }
}

/// Returns the contents of the first `file` field; other fields are ignored.
///
/// The body is already in memory (its size was bounded while reading it).
pub async fn file_field(content_type: Option<&str>, body: Bytes) -> Result<Bytes, MultipartError> {
    let content_type = content_type.ok_or(MultipartError::NotMultipart)?;
    let is_form = content_type
        .split(';')
        .next()
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("multipart/form-data"));
    if !is_form {
        return Err(MultipartError::NotMultipart);
    }
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| MultipartError::Malformed("the Content-Type has no boundary".to_owned()))?;
    let stream = futures_util::stream::once(async move { Ok::<Bytes, Infallible>(body) });
    let mut form = multer::Multipart::new(stream, boundary);
    loop {
        let field = form
            .next_field()
            .await
            .map_err(|e| MultipartError::Malformed(e.to_string()))?;
        let Some(field) = field else {
            return Err(MultipartError::MissingFile);
        };
        if field.name() == Some(FILE_FIELD) {
            return field
                .bytes()
                .await
                .map_err(|e| MultipartError::Malformed(e.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(parts: &[(&str, &str)]) -> Bytes {
        let mut body = String::new();
        for (name, content) in parts {
            body.push_str(&format!(
                "--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}.csv\"\r\nContent-Type: text/csv\r\n\r\n{content}\r\n"
            ));
        }
        body.push_str("--XyZ--\r\n");
        Bytes::from(body)
    }

    #[tokio::test]
    async fn finds_the_file_field_among_others() {
        let body = form(&[("note", "hello"), ("file", "a,b\r\n1,2\r\n")]);
        let file = file_field(Some("multipart/form-data; boundary=XyZ"), body)
            .await
            .unwrap();
        assert_eq!(&file[..], b"a,b\r\n1,2\r\n");
    }

    #[tokio::test]
    async fn names_what_is_wrong() {
        let body = form(&[("note", "hello")]);
        assert_eq!(
            file_field(Some("multipart/form-data; boundary=XyZ"), body.clone()).await,
            Err(MultipartError::MissingFile)
        );
        assert_eq!(
            file_field(Some("text/csv"), body.clone()).await,
            Err(MultipartError::NotMultipart)
        );
        assert_eq!(
            file_field(None, body.clone()).await,
            Err(MultipartError::NotMultipart)
        );
        assert!(matches!(
            file_field(Some("multipart/form-data"), body).await,
            Err(MultipartError::Malformed(_))
        ));
        assert!(matches!(
            file_field(
                Some("multipart/form-data; boundary=XyZ"),
                Bytes::from_static(b"--XyZ\r\ngarbage")
            )
            .await,
            Err(MultipartError::Malformed(_))
        ));
    }
}
