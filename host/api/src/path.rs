//! distribution's path grammar (docs/behaviour.md, Paths), with regstore's D8.

/// Whether `path` matches `^(/[A-Za-z0-9._-]+)+$` and has no `.` or `..` component (D8).
pub fn is_valid(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    rest.split('/').all(|c| {
        !c.is_empty()
            && c != "."
            && c != ".."
            && c.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    })
}

/// The paths distribution's testsuite stores and reads back (its TestValidPaths).
pub const DISTRIBUTION_VALID_PATHS: [&str; 16] = [
    "/a",
    "/2",
    "/aa",
    "/a.a",
    "/0-9/abcdefg",
    "/abcdefg/z.75",
    "/abc/1.2.3.4.5-6_zyx/123.z/4",
    "/docker/docker-registry",
    "/123.abc",
    "/abc./abc",
    "/.abc",
    "/a--b",
    "/a-.b",
    "/_.abc",
    "/Docker/docker-registry",
    "/Abc/Cba",
];

/// The paths distribution's testsuite expects to be refused as invalid.
pub const DISTRIBUTION_INVALID_PATHS: [&str; 6] = ["", "/", "abc", "123.abc", "//bcd", "/abc_123/"];

/// The parent directory of an absolute path; `/` for a top-level path.
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// Component-wise ordering of paths: `/` sorts before every other byte (D2), so a directory
/// is followed by its whole subtree before a sibling such as `dir-suffix`.
pub fn cmp_components(a: &str, b: &str) -> std::cmp::Ordering {
    let key = |s: &str| s.bytes().map(|c| if c == b'/' { 0 } else { c }).collect::<Vec<u8>>();
    key(a).cmp(&key(b))
}

/// Whether `path` lies at or under `dir` (a `dir/` boundary, never a bare prefix).
pub fn is_at_or_under(path: &str, dir: &str) -> bool {
    dir == "/" || path == dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_valid_and_invalid_paths() {
        for p in DISTRIBUTION_VALID_PATHS {
            assert!(is_valid(p), "{p} should be valid");
        }
        for p in DISTRIBUTION_INVALID_PATHS.iter().chain(&["/a/./b", "/a/..", "/..", "/a b", "/é"]) {
            assert!(!is_valid(p), "{p} should be invalid");
        }
    }

    #[test]
    fn parents_and_order() {
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/a/b/c"), "/a/b");
        assert!(cmp_components("/folder1/file1", "/folder1-suffix").is_lt());
        assert!(is_at_or_under("/a/b", "/a"));
        assert!(!is_at_or_under("/ab", "/a"));
        assert!(is_at_or_under("/x", "/"));
    }
}
