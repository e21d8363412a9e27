//! What a plan keeps about each tag while the tag has work: an entry made
//! when one of its tasks is queued while none is queued or running, and
//! freed when its last queued or running task ends.
//!
//! Services tag by user or by connection, so the names a plan sees have no
//! bound; the tags it keeps do: those with a task queued or running. A tag's
//! counts cover that life alone (see [`Plan::tag_stats`]), and a later task
//! of the same name starts a new life, counted from zero.
//!
//! The registry lives in the plan's locked state, beside the queue, and only
//! changes under that one lock: a tag is registered in the hold that queues
//! its task, and freed in the hold that takes its last task off the queue or
//! out of its running set. That gives the invariant the per-tag lists rely
//! on: while a task is queued or running, its tag is registered, under the
//! index its [`TagInfo`] names. An index is freed only once no task uses
//! it, and handed to another tag only after that; a submitter that has not
//! queued its task yet holds no index at all, so nothing it looked up can
//! go stale under it.
//!
//! [`Plan::tag_stats`]: crate::Plan::tag_stats

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use slab::Slab;

use crate::engine::cell::Control;
use crate::engine::counters::Outcomes;
use crate::tag::Tag;

/// What a tagged task's header shares with the plan about its tag, for one
/// life of the tag.
pub(crate) struct TagInfo {
    /// Index of the tag's lists and counts in the plan's locked state.
    ///
    /// Stale once the tag is freed (handles and log lines may keep a
    /// `TagInfo` longer), so it is only read under the plan's lock, for a
    /// task that is queued or running: then its tag is registered here.
    pub(crate) index: usize,
    /// Kept here only: the registry finds entries by it (see `Registered`).
    pub(crate) name: Tag,
    /// Outcomes of this tag's tasks in this life, counted as the plan's are.
    pub(crate) outcomes: Outcomes,
}

/// The counters of a tag's new life. With the `metrics` feature this
/// registers the tag's series with the installed recorder, which is user
/// code: the caller must not hold the plan's lock.
pub(crate) fn new_outcomes(plan: &str, tag: &str) -> Outcomes {
    #[cfg(not(feature = "metrics"))]
    let _ = (plan, tag);
    Outcomes {
        #[cfg(feature = "metrics")]
        published: crate::engine::metrics::Published::for_tag(plan, tag),
        ..Outcomes::default()
    }
}

/// What the locked state knows of one registered tag.
#[derive(Default)]
pub(crate) struct TagState {
    pub(crate) submitted: usize,
    pub(crate) started: usize,
    /// The tag's running tasks, so `cancel_tag` can reach them.
    pub(crate) running: Slab<Arc<dyn Control>>,
}

/// A registered tag, found in the registry's set by its name.
struct Registered(Arc<TagInfo>);

impl Borrow<str> for Registered {
    fn borrow(&self) -> &str {
        self.0.name.as_str()
    }
}

// By name, as `str` hashes and compares, which `Borrow<str>` requires.
impl Hash for Registered {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.name.as_str().hash(state);
    }
}

impl PartialEq for Registered {
    fn eq(&self, other: &Registered) -> bool {
        self.0.name.as_str() == other.0.name.as_str()
    }
}

impl Eq for Registered {}

/// Storage for this many tags is kept when the last registered tag is
/// freed; storage grown past it for a burst of tags is given back then, as
/// the queue gives back its own.
const RETAINED_TAGS: usize = 64;

/// The tags that have a task queued or running. Lives in the plan's locked
/// state; see the module docs for the invariant.
pub(crate) struct TagRegistry {
    by_name: HashSet<Registered>,
    /// By `TagInfo::index`. A slab, so a freed index goes to the next new
    /// tag, and the per-tag storage here and in the queue grows with the
    /// most tags registered at once, not with every tag ever seen.
    states: Slab<TagState>,
}

impl TagRegistry {
    pub(crate) fn new() -> TagRegistry {
        TagRegistry {
            by_name: HashSet::new(),
            states: Slab::new(),
        }
    }

    /// How many tags are registered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_name.len()
    }

    pub(crate) fn find(&self, name: &str) -> Option<&Arc<TagInfo>> {
        self.by_name.get(name).map(|registered| &registered.0)
    }

    /// Registers a tag that is not registered (the caller looked), with the
    /// counters of its new life.
    pub(crate) fn register(&mut self, name: Tag, outcomes: Outcomes) -> Arc<TagInfo> {
        debug_assert!(self.find(name.as_str()).is_none(), "registered twice");
        let index = self.states.insert(TagState::default());
        let tag = Arc::new(TagInfo {
            index,
            name,
            outcomes,
        });
        self.by_name.insert(Registered(Arc::clone(&tag)));
        tag
    }

    /// The counts of a registered tag.
    pub(crate) fn state(&self, index: usize) -> &TagState {
        &self.states[index]
    }

    pub(crate) fn state_mut(&mut self, index: usize) -> &mut TagState {
        &mut self.states[index]
    }

    /// Frees a registered tag: its entry, its counts and its index. The
    /// caller has seen that none of its tasks is queued or running.
    ///
    /// The registry's reference to the `TagInfo` is never the last one here:
    /// the caller holds the tag too (through a task, or a clone), and drops
    /// it after releasing the lock. That matters with the `metrics` feature,
    /// where the last drop drops the tag's metric handles, which are the
    /// recorder's code.
    pub(crate) fn free(&mut self, tag: &TagInfo) {
        let registered = self.by_name.take(tag.name.as_str());
        debug_assert!(
            registered.is_some_and(|registered| std::ptr::eq(&*registered.0, tag)),
            "a freed tag is the registered one"
        );
        self.states.remove(tag.index);
        self.give_back_storage_if_empty();
    }

    /// Frees every registered tag none of whose tasks is running, for a
    /// plan whose queue was just drained (so none is queued either). The
    /// drained tasks still hold their tags, so, as with `free`, the
    /// registry's references are not the last.
    pub(crate) fn free_all_not_running(&mut self) {
        let states = &mut self.states;
        self.by_name.retain(|Registered(tag)| {
            let running = !states[tag.index].running.is_empty();
            if !running {
                states.remove(tag.index);
            }
            running
        });
        self.give_back_storage_if_empty();
    }

    fn give_back_storage_if_empty(&mut self) {
        if self.states.is_empty() && self.states.capacity() > RETAINED_TAGS {
            self.states = Slab::with_capacity(RETAINED_TAGS);
            self.by_name = HashSet::with_capacity(RETAINED_TAGS);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    //! The registry alone: indices freed and handed out again, storage
    //! given back. How the plan keeps it (registered with a task's push,
    //! freed with its last task) is tested in `engine::shared`.

    use super::*;

    fn register(registry: &mut TagRegistry, name: &str) -> Arc<TagInfo> {
        registry.register(Tag::from(name.to_owned()), Outcomes::default())
    }

    #[test]
    fn a_freed_index_goes_to_the_next_new_tag() {
        let mut registry = TagRegistry::new();
        let a = register(&mut registry, "a");
        let b = register(&mut registry, "b");
        assert_eq!((a.index, b.index), (0, 1));
        assert!(
            registry
                .find("a")
                .is_some_and(|found| Arc::ptr_eq(found, &a))
        );
        registry.free(&a);
        assert!(registry.find("a").is_none());
        assert_eq!(registry.len(), 1);
        let c = register(&mut registry, "c");
        assert_eq!(c.index, 0, "a's index, freed");
        // A new life of a name is a new entry, with counters from zero.
        let a_again = register(&mut registry, "a");
        assert_eq!(a_again.index, 2);
        assert!(!Arc::ptr_eq(&a, &a_again));
    }

    #[test]
    fn storage_grown_for_many_tags_is_given_back_when_the_last_is_freed() {
        let mut registry = TagRegistry::new();
        let tags: Vec<_> = (0..1000)
            .map(|n| register(&mut registry, &format!("user-{n}")))
            .collect();
        assert!(registry.states.capacity() >= 1000);
        for tag in &tags[1..] {
            registry.free(tag);
        }
        assert!(registry.states.capacity() >= 1000, "kept while one is left");
        registry.free(&tags[0]);
        assert_eq!(registry.len(), 0);
        assert_eq!(registry.states.capacity(), RETAINED_TAGS);
        assert!(registry.by_name.capacity() < 2 * RETAINED_TAGS);
    }

    #[test]
    fn after_a_drain_only_tags_with_running_tasks_stay() {
        let mut registry = TagRegistry::new();
        let queued_only = register(&mut registry, "queued");
        let running = register(&mut registry, "running");
        let task = crate::engine::cell::NewTask::new(async {}, Default::default());
        let task = task.into_task().control();
        registry.state_mut(running.index).running.insert(task);
        registry.free_all_not_running();
        assert!(registry.find("queued").is_none());
        assert!(registry.find("running").is_some());
        assert_eq!(registry.len(), 1);
        drop(queued_only);
    }
}
