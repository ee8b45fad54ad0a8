//! The precompiled-component cache: entries are written once, loaded after, and a corrupted
//! or foreign entry is recompiled, never loaded.

use std::path::{Path, PathBuf};

use regstore::{Cache, Params, Registry, StorageDriver};

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default()
}

async fn round_trip(registry: &Registry) {
    let d = registry.create("inmemory", &Params::new()).await.expect("inmemory opens");
    d.put_content("/k", b"v").await.unwrap();
    assert_eq!(d.get_content("/k").await.unwrap(), b"v");
}

#[tokio::test]
async fn entries_are_written_then_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new().with_cache(Some(Cache::new(dir.path())));
    round_trip(&registry).await;
    let written = entries(dir.path());
    assert_eq!(written.len(), 1, "{written:?}");
    let before = std::fs::read(&written[0]).unwrap();
    // Another registry, as another process would be, loads it.
    let again = Registry::new().with_cache(Some(Cache::new(dir.path())));
    let (cold, cached) = again.load_times("inmemory").unwrap();
    let cached = cached.expect("the entry loads from the cache");
    assert!(cached < cold, "loading ({cached:?}) must beat compiling ({cold:?})");
    round_trip(&again).await;
    assert_eq!(std::fs::read(&written[0]).unwrap(), before);
}

#[tokio::test]
async fn corrupted_and_foreign_entries_are_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    round_trip(&Registry::new().with_cache(Some(Cache::new(dir.path())))).await;
    let entry = entries(dir.path()).pop().unwrap();
    let good = std::fs::read(&entry).unwrap();

    // A flipped byte in the artifact.
    let mut corrupted = good.clone();
    let last = corrupted.len() - 100;
    corrupted[last] ^= 0xff;
    std::fs::write(&entry, &corrupted).unwrap();
    round_trip(&Registry::new().with_cache(Some(Cache::new(dir.path())))).await;
    assert_eq!(std::fs::read(&entry).unwrap(), good, "the corrupted entry is replaced by a fresh compile");

    // Something else entirely under the entry's name.
    std::fs::write(&entry, b"regstore-cwasm-2\nnot an artifact at all, just bytes").unwrap();
    round_trip(&Registry::new().with_cache(Some(Cache::new(dir.path())))).await;
    assert_eq!(std::fs::read(&entry).unwrap(), good);
}
