//! DbConfig::from_env: DATABASE_URL, DATABASE_URL_FILE, both, neither. One test function, because the
//! process environment is shared by every test thread in this binary.
#![cfg(feature = "db")]

use common::db::DbConfig;
use testkit::TempDir;

const SECRET: &str = "Fil3-s3cret";

fn set(name: &str, value: Option<&str>) {
    // SAFETY: this binary has a single test, so no other thread reads the environment meanwhile.
    unsafe {
        match value {
            Some(value) => std::env::set_var(name, value),
            None => std::env::remove_var(name),
        }
    }
}

fn from_env(url: Option<&str>, file: Option<&str>) -> Result<DbConfig, String> {
    set("DATABASE_URL", url);
    set("DATABASE_URL_FILE", file);
    DbConfig::from_env().map_err(|err| {
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(SECRET), "secret leaked: {shown}");
        assert!(!shown.contains("postgres://"), "URL leaked: {shown}");
        err.to_string()
    })
}

#[test]
fn database_url_and_database_url_file() {
    let dir = TempDir::new("common-from-env");
    let url = format!("postgres://app:{SECRET}@db:5432/tracker?sslmode=disable");

    assert_eq!(
        from_env(None, None).unwrap_err(),
        "DATABASE_URL: DATABASE_URL is required (or DATABASE_URL_FILE)"
    );
    assert_eq!(
        from_env(Some(""), Some("")).unwrap_err(),
        "DATABASE_URL: DATABASE_URL is required (or DATABASE_URL_FILE)",
        "empty counts as unset"
    );

    let config = from_env(Some(&url), None).unwrap();
    assert_eq!(config.describe(), "db:5432/tracker");
    assert_eq!(config.pg_config().get_password(), Some(SECRET.as_bytes()));

    let file = dir.path().join("url");
    std::fs::write(&file, format!("\n  {url}\n\n")).unwrap();
    let file = file.display().to_string();
    let config = from_env(None, Some(&file)).unwrap();
    assert_eq!(config.describe(), "db:5432/tracker");
    assert_eq!(config.pg_config().get_password(), Some(SECRET.as_bytes()));

    assert_eq!(
        from_env(Some(&url), Some(&file)).unwrap_err(),
        "DATABASE_URL: both DATABASE_URL and DATABASE_URL_FILE are set; set only one"
    );

    let missing = dir.path().join("missing").display().to_string();
    assert_eq!(
        from_env(None, Some(&missing)).unwrap_err(),
        format!("DATABASE_URL_FILE: {missing}: cannot read: no such file")
    );

    let empty = dir.path().join("empty");
    std::fs::write(&empty, " \n").unwrap();
    let empty = empty.display().to_string();
    assert_eq!(
        from_env(None, Some(&empty)).unwrap_err(),
        format!("DATABASE_URL_FILE: {empty}: the file is empty")
    );

    // A malformed URL in the file: the error names the file and the problem, never the content.
    let bad = dir.path().join("bad");
    std::fs::write(
        &bad,
        format!("postgres://app:{SECRET}@db/tracker?sslmode=bogus\n"),
    )
    .unwrap();
    let bad = bad.display().to_string();
    let err = from_env(None, Some(&bad)).unwrap_err();
    assert!(
        err.starts_with(&format!("DATABASE_URL_FILE: {bad}: unsupported sslmode")),
        "{err}"
    );

    let binary = dir.path().join("binary");
    std::fs::write(&binary, b"\xff\xfe").unwrap();
    let binary = binary.display().to_string();
    assert_eq!(
        from_env(None, Some(&binary)).unwrap_err(),
        format!("DATABASE_URL_FILE: {binary}: not valid UTF-8")
    );

    // A directory is unreadable as a file.
    let dir_path = dir.path().display().to_string();
    let err = from_env(None, Some(&dir_path)).unwrap_err();
    assert!(
        err.starts_with(&format!("DATABASE_URL_FILE: {dir_path}: cannot read: ")),
        "{err}"
    );

    let err = from_env(
        Some(&format!("postgres://app:{SECRET}@db/tracker?nope=1")),
        None,
    )
    .unwrap_err();
    assert!(
        err.starts_with("DATABASE_URL: unsupported parameter 'nope'"),
        "{err}"
    );
}
