//! The `checkpoint` object: published verbatim, never for a smaller tree,
//! replaced at the same size only by the same tree head.

mod common;

use cairn_storage::{CHECKPOINT_KEY, StorageError};
use common::{ORIGIN, note, overwrite_raw, read_raw, temp_store};

#[tokio::test]
async fn first_checkpoint_is_written_and_served_verbatim() {
    let (_dir, store) = temp_store();
    assert_eq!(store.checkpoint().await.unwrap(), None);
    let bytes = note(ORIGIN, 10, [1; 32], 0);
    store.put_checkpoint(10, bytes.clone()).await.unwrap();
    assert_eq!(store.checkpoint().await.unwrap().unwrap(), bytes);
    assert_eq!(store.get(CHECKPOINT_KEY).await.unwrap().unwrap(), bytes);
    assert_eq!(read_raw(&store, CHECKPOINT_KEY).await.unwrap(), bytes);
}

#[tokio::test]
async fn checkpoint_never_shrinks() {
    let (_dir, store) = temp_store();
    let big = note(ORIGIN, 10, [1; 32], 1);
    store.put_checkpoint(10, big.clone()).await.unwrap();
    let err = store
        .put_checkpoint(9, note(ORIGIN, 9, [2; 32], 3))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::CheckpointShrinks {
                stored: 10,
                requested: 9
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_fatal() && !err.is_retryable());
    assert_eq!(store.checkpoint().await.unwrap().unwrap(), big);
    // Growing is fine.
    let bigger = note(ORIGIN, 11, [3; 32], 0);
    store.put_checkpoint(11, bigger.clone()).await.unwrap();
    assert_eq!(store.checkpoint().await.unwrap().unwrap(), bigger);
}

#[tokio::test]
async fn same_tree_head_with_more_cosignatures_replaces_the_checkpoint() {
    let (_dir, store) = temp_store();
    store
        .put_checkpoint(5, note(ORIGIN, 5, [4; 32], 1))
        .await
        .unwrap();
    let more = note(ORIGIN, 5, [4; 32], 2);
    store.put_checkpoint(5, more.clone()).await.unwrap();
    assert_eq!(store.checkpoint().await.unwrap().unwrap(), more);
    // Publishing the identical note again is a no-op success.
    store.put_checkpoint(5, more.clone()).await.unwrap();
    assert_eq!(store.checkpoint().await.unwrap().unwrap(), more);
}

#[tokio::test]
async fn same_size_with_another_root_is_a_fatal_fork() {
    let (_dir, store) = temp_store();
    let original = note(ORIGIN, 5, [4; 32], 0);
    store.put_checkpoint(5, original.clone()).await.unwrap();
    let err = store
        .put_checkpoint(5, note(ORIGIN, 5, [5; 32], 0))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::CheckpointFork { size: 5 }),
        "{err:?}"
    );
    assert!(err.is_fatal());
    assert_eq!(store.checkpoint().await.unwrap().unwrap(), original);
}

#[tokio::test]
async fn another_logs_checkpoint_in_the_prefix_is_fatal() {
    let (_dir, store) = temp_store();
    store
        .put_checkpoint(5, note("example.org/other-log", 5, [4; 32], 0))
        .await
        .unwrap();
    let err = store
        .put_checkpoint(6, note(ORIGIN, 6, [4; 32], 0))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::CheckpointOriginMismatch { .. }),
        "{err:?}"
    );
    assert!(err.is_fatal());
}

#[tokio::test]
async fn malformed_or_mislabelled_notes_are_refused_before_any_write() {
    let (_dir, store) = temp_store();
    let err = store
        .put_checkpoint(5, b"not a note".to_vec())
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::InvalidCheckpoint(_)), "{err:?}");
    let err = store
        .put_checkpoint(6, note(ORIGIN, 5, [4; 32], 0))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::CheckpointSizeMismatch {
                size: 6,
                note_size: 5
            }
        ),
        "{err:?}"
    );
    assert_eq!(store.checkpoint().await.unwrap(), None);
}

#[tokio::test]
async fn a_corrupt_stored_checkpoint_blocks_publication() {
    let (_dir, store) = temp_store();
    overwrite_raw(&store, CHECKPOINT_KEY, b"garbage\n".to_vec()).await;
    let err = store
        .put_checkpoint(5, note(ORIGIN, 5, [4; 32], 0))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::Corrupt { ref path, .. } if path == CHECKPOINT_KEY),
        "{err:?}"
    );
    assert!(err.is_fatal());
    assert_eq!(
        read_raw(&store, CHECKPOINT_KEY).await.unwrap(),
        b"garbage\n"
    );
}
