//! The local image store: put, list, lookup (as `FROM` does), replace,
//! remove and blob garbage collection. No root needed.

use std::fs;
use std::path::Path;

use rootstrap::image::oci::{History, ImageConfig};
use rootstrap::image::store::{ImageStore, StoreError};
use rootstrap::image::{ImageBuilder, ImageReference, LayerCompression, LayerOptions, OpenedImage};

/// An image of one layer holding `/f` with `content`, plus a shared
/// `/base` layer below it so images share a blob.
fn image(dir: &Path, content: &str) -> ImageBuilder {
    let base = dir.join(format!("base-{content}"));
    let top = dir.join(format!("top-{content}"));
    fs::create_dir_all(&base).unwrap();
    fs::create_dir_all(&top).unwrap();
    fs::write(base.join("base"), "shared").unwrap();
    fs::write(top.join("f"), content).unwrap();
    let mut config = ImageConfig::new("amd64", "linux");
    config.created = Some("2024-01-01T00:00:00Z".into());
    let mut b = ImageBuilder::new_in(dir, config, LayerCompression::Gzip).unwrap();
    let opts = LayerOptions {
        source_date_epoch: Some(0),
        ..LayerOptions::default()
    };
    b.add_layer_from_dir(&base, &opts, History::default())
        .unwrap();
    b.add_layer_from_dir(&top, &opts, History::default())
        .unwrap();
    b
}

fn blob_count(store: &ImageStore) -> usize {
    fs::read_dir(store.dir().join("blobs/sha256"))
        .unwrap()
        .count()
}

#[test]
fn put_list_lookup_replace_and_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::new(tmp.path());
    assert!(store.list().unwrap().is_empty());
    assert!(store.lookup("me/a:1").unwrap().is_none());

    let a = store
        .put(
            &image(tmp.path(), "a"),
            &ImageReference::parse("me/a:1").unwrap(),
        )
        .unwrap();
    assert_eq!((a.name.as_str(), a.tag.as_str()), ("me/a", "1"));
    assert!(a.size > 0);
    assert_eq!(a.created.as_deref(), Some("2024-01-01T00:00:00Z"));
    // config, manifest, base layer, top layer
    assert_eq!(blob_count(&store), 4);
    let b = store
        .put(
            &image(tmp.path(), "b"),
            &ImageReference::parse("b").unwrap(),
        )
        .unwrap();
    // The base layer blob is shared: only b's top layer, config, manifest are new.
    assert_eq!(blob_count(&store), 7);
    let names: Vec<String> = store
        .list()
        .unwrap()
        .iter()
        .map(|i| i.reference())
        .collect();
    assert_eq!(names, ["b:latest", "me/a:1"]);

    // FROM me/a:1 opens the stored image by name.
    let (source, name) = store.lookup("me/a:1").unwrap().unwrap();
    let opened = OpenedImage::open(&source, name.as_deref()).unwrap();
    assert_eq!(opened.manifest_digest.unwrap().to_string(), a.digest);
    assert!(store.lookup("b:latest").unwrap().is_some());
    assert!(store.lookup("b:2").unwrap().is_none());
    assert!(store.lookup("Not A Name").unwrap().is_none());

    // Replacing a name collects the blobs only the old image used.
    let a2 = store
        .put(
            &image(tmp.path(), "a2"),
            &ImageReference::parse("me/a:1").unwrap(),
        )
        .unwrap();
    assert_ne!(a2.digest, a.digest);
    assert_eq!(blob_count(&store), 7);
    assert_eq!(store.list().unwrap().len(), 2);

    let removed = store.remove("b").unwrap();
    assert_eq!(removed.digest, b.digest);
    assert_eq!(blob_count(&store), 4);
    assert!(matches!(store.remove("b"), Err(StoreError::NotFound(_))));
    store.remove("me/a:1").unwrap();
    assert_eq!(blob_count(&store), 0);
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn a_corrupt_index_is_reported_with_its_path() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::new(tmp.path());
    fs::create_dir_all(store.dir()).unwrap();
    fs::write(store.dir().join("index.json"), b"{nope").unwrap();
    let err = store.list().unwrap_err().to_string();
    assert!(err.contains("index.json"), "{err}");
}

#[test]
fn a_hostile_manifest_digest_is_refused_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::new(tmp.path());
    store
        .put(
            &image(tmp.path(), "a"),
            &ImageReference::parse("a").unwrap(),
        )
        .unwrap();
    store
        .put(
            &image(tmp.path(), "b"),
            &ImageReference::parse("b").unwrap(),
        )
        .unwrap();
    let index = store.dir().join("index.json");
    let text = fs::read_to_string(&index).unwrap();
    let digest = text
        .split("\"digest\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    fs::write(&index, text.replace(digest, "sha256:../../../etc/passwd")).unwrap();
    let err = store.remove("b").unwrap_err().to_string();
    assert!(err.contains("invalid manifest digest"), "{err}");
}
