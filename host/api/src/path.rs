//! distribution's path grammar (spec §3.7), with regstore's D8.

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

/// The parent directory of an absolute path; `/` for a top-level path.
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// Component-wise ordering of paths: `/` sorts before every other byte (spec D2), so a directory
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
        for p in [
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
        ] {
            assert!(is_valid(p), "{p} should be valid");
        }
        for p in ["", "/", "abc", "123.abc", "//bcd", "/abc_123/", "/a/./b", "/a/..", "/..", "/a b", "/é"] {
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
