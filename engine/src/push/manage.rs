//! Managing subscriptions: one implementation for `beast subscriptions …`. Every call names an
//! owner (an API key id) or none (the operator's CLI, which sees every subscription).

use super::guard::Guard;
use super::https::{AttemptError, resolve};
use super::sign::new_secret;
use super::subscription::{Spec, SpecError, SubState, Subscription};
use crate::store::{DeliveryRow, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error(transparent)]
    Invalid(#[from] SpecError),
    #[error("no subscription {0}")]
    NotFound(u64),
    #[error("key {0} does not exist or is revoked")]
    NoOwner(u64),
    #[error("key {owner} already has {limit} subscriptions, the most a key may have")]
    TooMany { owner: u64, limit: usize },
    #[error("subscription {0} is already {1}")]
    AlreadyIn(u64, &'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot make a secret: {0}")]
    Secret(std::io::Error),
}

impl ManageError {
    /// The caller asked for something wrong (as opposed to the service failing).
    pub fn is_user_error(&self) -> bool {
        !matches!(self, ManageError::Store(_) | ManageError::Secret(_))
    }
}

/// Limits on what may be created.
pub struct Limits {
    pub max_per_key: usize,
    /// How long a rotated secret keeps signing beside the new one, ms.
    pub secret_overlap_ms: u64,
}

/// Creates a subscription for `owner` and returns it with its secret (shown this once).
pub async fn create(
    store: &mut Store,
    guard: &Guard,
    limits: &Limits,
    owner: u64,
    spec: &Spec,
    now_ms: u64,
) -> Result<(Subscription, String), ManageError> {
    let checked = spec.check()?;
    // The SSRF guard, on every address the target resolves to now (and again at every
    // connection).
    match resolve(guard, &checked.target).await {
        Ok(_) => {}
        Err(AttemptError::Blocked { ip, why }) => {
            return Err(SpecError::Forbidden {
                target: checked.target.to_string(),
                ip,
                why: why.as_str(),
            }
            .into());
        }
        Err(_) => return Err(SpecError::Unresolved(checked.target.to_string()).into()),
    }
    let keys = store.keys().await?;
    if !keys.iter().any(|k| k.id == owner && k.revoked_ms.is_none()) {
        return Err(ManageError::NoOwner(owner));
    }
    let owned = store.subscriptions(Some(owner)).await?.len();
    if owned >= limits.max_per_key {
        return Err(ManageError::TooMany {
            owner,
            limit: limits.max_per_key,
        });
    }
    let secret = new_secret().map_err(ManageError::Secret)?;
    let mut sub = Subscription {
        id: 0,
        owner,
        target: checked.target,
        assets: checked.assets,
        trigger: checked.trigger,
        format: checked.format,
        secret: secret.clone(),
        previous_secret: None,
        previous_until_ms: 0,
        state: SubState::Active,
        created_ms: now_ms,
        updated_ms: now_ms,
        seq_floor: 0,
    };
    sub.id = store.create_subscription(sub.to_row()).await?;
    Ok((sub, secret))
}

pub async fn list(store: &mut Store, owner: Option<u64>) -> Result<Vec<Subscription>, ManageError> {
    let rows = store.subscriptions(owner).await?;
    rows.into_iter()
        .map(|row| Subscription::from_row(row).map_err(|e| StoreError::Corrupt(e).into()))
        .collect()
}

/// One subscription, if `owner` (when given) owns it.
pub async fn get(
    store: &mut Store,
    owner: Option<u64>,
    id: u64,
) -> Result<Subscription, ManageError> {
    list(store, owner)
        .await?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or(ManageError::NotFound(id))
}

/// Pauses (`active: false`) or resumes (`true`, from paused or disabled) a subscription.
pub async fn set_active(
    store: &mut Store,
    owner: Option<u64>,
    id: u64,
    active: bool,
    now_ms: u64,
) -> Result<Subscription, ManageError> {
    let mut sub = get(store, owner, id).await?;
    let wanted = if active {
        SubState::Active
    } else {
        SubState::Paused
    };
    if sub.state == wanted {
        return Err(ManageError::AlreadyIn(id, wanted.as_str()));
    }
    sub.state = wanted;
    sub.updated_ms = now_ms;
    if !store.update_subscription(sub.to_row()).await? {
        return Err(ManageError::NotFound(id));
    }
    Ok(sub)
}

pub async fn delete(store: &mut Store, owner: Option<u64>, id: u64) -> Result<(), ManageError> {
    get(store, owner, id).await?;
    if store.delete_subscription(id).await? {
        Ok(())
    } else {
        Err(ManageError::NotFound(id))
    }
}

/// A new secret; the old one keeps signing beside it for the overlap, so receivers can switch
/// without missing a delivery. Returns the new secret (shown this once).
pub async fn rotate_secret(
    store: &mut Store,
    limits: &Limits,
    owner: Option<u64>,
    id: u64,
    now_ms: u64,
) -> Result<(Subscription, String), ManageError> {
    let mut sub = get(store, owner, id).await?;
    let secret = new_secret().map_err(ManageError::Secret)?;
    sub.previous_secret = Some(std::mem::replace(&mut sub.secret, secret.clone()));
    sub.previous_until_ms = now_ms + limits.secret_overlap_ms;
    sub.updated_ms = now_ms;
    if !store.update_subscription(sub.to_row()).await? {
        return Err(ManageError::NotFound(id));
    }
    Ok((sub, secret))
}

pub async fn deliveries(
    store: &mut Store,
    owner: Option<u64>,
    id: u64,
    since_ms: u64,
    limit: u64,
) -> Result<Vec<DeliveryRow>, ManageError> {
    get(store, owner, id).await?;
    Ok(store.deliveries(id, since_ms, limit, false).await?)
}

/// Asks the push node to send again the deliveries it gave up since `since_ms`; how many
/// there are.
pub async fn replay(
    store: &mut Store,
    owner: Option<u64>,
    id: u64,
    since_ms: u64,
    now_ms: u64,
) -> Result<usize, ManageError> {
    get(store, owner, id).await?;
    let waiting = store.deliveries(id, since_ms, 10_000, true).await?.len();
    if waiting > 0 {
        store.request_replay(id, since_ms, now_ms).await?;
    }
    Ok(waiting)
}
