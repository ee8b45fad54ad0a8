//! PutContent and GetContent: paths, round trips, truncation (tests 1–10, 34).

use crate::util::*;
use crate::{Ctx, Test};
use regstore_api::ErrorKind;
use regstore_api::path::{DISTRIBUTION_INVALID_PATHS as INVALID_PATHS, DISTRIBUTION_VALID_PATHS as VALID_PATHS};

pub fn tests() -> Vec<Test> {
    vec![
        Test::new("TestRootExists", root_exists),
        Test::new("TestValidPaths", valid_paths),
        Test::new("TestInvalidPaths", invalid_paths),
        Test::new("TestWriteRead1", |cx| write_read(cx, b"a".to_vec())),
        Test::new("TestWriteRead2", |cx| write_read(cx, b"\xc3\x9f".to_vec())),
        Test::new("TestWriteRead3", |cx| write_read(cx, random_contents(32))),
        Test::new("TestWriteRead4", |cx| write_read(cx, random_contents(1 << 20))),
        Test::new("TestWriteReadNonUTF8", |cx| write_read(cx, vec![0x80; 4])),
        Test::new("TestTruncate", truncate),
        Test::new("TestReadNonexistent", read_nonexistent),
        Test::new("TestPutContentMultipleTimes", put_content_multiple_times),
    ]
}

async fn root_exists(cx: Ctx) -> TestResult {
    cx.d().list("/").await.ctx("List(\"/\") on empty storage")?;
    PASSED
}

async fn valid_paths(cx: Ctx) -> TestResult {
    let content = random_contents(64);
    for path in VALID_PATHS {
        cx.d().put_content(path, &content).await.ctx(&format!("PutContent({path})"))?;
        let got = cx.d().get_content(path).await.ctx(&format!("GetContent({path})"))?;
        ensure!(got == content, "GetContent({path}) returned other bytes");
        cx.d().delete(&first_part(path)).await.ctx(&format!("Delete({})", first_part(path)))?;
    }
    PASSED
}

async fn invalid_paths(cx: Ctx) -> TestResult {
    let content = random_contents(64);
    for path in INVALID_PATHS {
        expect_error(
            cx.d().put_content(path, &content).await,
            ErrorKind::InvalidPath,
            cx.name(),
            &format!("PutContent({path:?})"),
        )?;
        expect_error(
            cx.d().get_content(path).await,
            ErrorKind::InvalidPath,
            cx.name(),
            &format!("GetContent({path:?})"),
        )?;
    }
    PASSED
}

async fn write_read(cx: Ctx, data: Vec<u8>) -> TestResult {
    write_read_compare(cx.d(), &random_path(32), &data).await?;
    PASSED
}

async fn truncate(cx: Ctx) -> TestResult {
    let path = random_path(32);
    write_read_compare(cx.d(), &path, &random_contents(1 << 20)).await?;
    write_read_compare(cx.d(), &path, &random_contents(1 << 10)).await?;
    PASSED
}

async fn read_nonexistent(cx: Ctx) -> TestResult {
    expect_error(
        cx.d().get_content(&random_path(32)).await,
        ErrorKind::PathNotFound,
        cx.name(),
        "GetContent of a missing path",
    )?;
    PASSED
}

async fn put_content_multiple_times(cx: Ctx) -> TestResult {
    let path = random_path(32);
    cx.d().put_content(&path, &random_contents(4096)).await.ctx("first PutContent")?;
    let second = random_contents(2048);
    cx.d().put_content(&path, &second).await.ctx("second PutContent")?;
    let got = cx.d().get_content(&path).await.ctx("GetContent")?;
    ensure!(got == second, "a smaller PutContent must replace the content: got {} bytes", got.len());
    cx.d().delete(&first_part(&path)).await.ctx("Delete")?;
    PASSED
}
