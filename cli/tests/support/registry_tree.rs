//! A registry's storage as distribution lays it out, written straight to a directory: blobs
//! named by their sha256, each linked from a repository's `_layers`, manifest revisions and a
//! tag under `_manifests`, and uploads in progress under `_uploads` with their `startedat` and
//! hash states.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub const V2: &str = "docker/registry/v2";

/// Blob sizes adding up to about `total` bytes: four large ones hold most of it, the rest are
/// small (a few hundred bytes to a few hundred KiB), as layers and configs are.
pub fn sizes(total: u64, blobs: usize) -> Vec<u64> {
    let small: Vec<u64> = (0..blobs.saturating_sub(4) as u64).map(|i| 200 + (i * 7919) % (300 << 10)).collect();
    let rest = total.saturating_sub(small.iter().sum());
    let large = (0..4u64).map(|i| rest / 4 + i * 4099);
    large.chain(small).collect()
}

/// Writes the tree under `root`; returns each blob's file.
pub fn write(root: &Path, sizes: &[u64]) -> std::io::Result<Vec<PathBuf>> {
    let v2 = root.join(V2);
    let mut blobs = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let staging = root.join(format!("blob-{i}.tmp"));
        let digest = write_content(&staging, *size, i as u64 + 1)?;
        let file = v2.join(format!("blobs/sha256/{}/{digest}/data", &digest[..2]));
        std::fs::create_dir_all(file.parent().unwrap())?;
        std::fs::rename(&staging, &file)?;
        let repository = format!("repositories/library/app{}", i % 3);
        write_file(
            &v2.join(format!("{repository}/_layers/sha256/{digest}/link")),
            format!("sha256:{digest}").as_bytes(),
        )?;
        if i % 10 == 0 {
            let revision = v2.join(format!("{repository}/_manifests/revisions/sha256/{digest}/link"));
            write_file(&revision, format!("sha256:{digest}").as_bytes())?;
            write_file(
                &v2.join(format!("{repository}/_manifests/tags/v{i}/current/link")),
                format!("sha256:{digest}").as_bytes(),
            )?;
            write_file(
                &v2.join(format!("{repository}/_manifests/tags/v{i}/index/sha256/{digest}/link")),
                format!("sha256:{digest}").as_bytes(),
            )?;
        }
        blobs.push(file);
    }
    for u in 0..3 {
        let upload = v2.join(format!("repositories/library/app{u}/_uploads/5f1c0a2e-7b3d-4e8f-9a6b-00000000000{u}"));
        write_file(&upload.join("startedat"), b"2026-12-03T18:00:00Z")?;
        write_file(&upload.join("hashstates/sha256/0"), &[u as u8; 100])?;
        write_content(&upload.join("data"), 4096 * u, 99)?;
    }
    Ok(blobs)
}

fn write_file(path: &Path, content: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(path.parent().unwrap())?;
    std::fs::write(path, content)
}

/// `size` pseudo-random bytes from `seed` into `path`; returns their hex sha256.
fn write_content(path: &Path, size: u64, seed: u64) -> std::io::Result<String> {
    std::fs::create_dir_all(path.parent().unwrap())?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut hasher = Sha256::new();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        for word in chunk[..n].chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
        }
        hasher.update(&chunk[..n]);
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    file.flush()?;
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Every file under `dir`, relative, sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// Whether both directories hold the same files with the same bytes; the first difference.
pub fn same_trees(a: &Path, b: &Path) -> Result<(), String> {
    let (left, right) = (files(a), files(b));
    if left != right {
        let only_left: Vec<_> = left.iter().filter(|f| !right.contains(f)).take(3).collect();
        let only_right: Vec<_> = right.iter().filter(|f| !left.contains(f)).take(3).collect();
        return Err(format!("the trees differ: only in the first {only_left:?}, only in the second {only_right:?}"));
    }
    for file in &left {
        if file_digest(&a.join(file))? != file_digest(&b.join(file))? {
            return Err(format!("{} differs", file.display()));
        }
    }
    Ok(())
}

fn file_digest(path: &Path) -> Result<Vec<u8>, String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(hasher.finalize().to_vec())
}
