//! Tags: names that group tasks, so a whole kind of work can be moved to the
//! front of the queue, cancelled, or counted at once.
//!
//! Each distinct tag a plan has seen gets a small entry that lives as long
//! as the plan: its index into the per-tag lists the queue keeps, and its
//! lifetime counters for [`Plan::tag_stats`](crate::Plan::tag_stats).

use std::borrow::{Borrow, Cow};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::engine::counters::Outcomes;

/// The name of a kind of task, given with
/// [`TaskBuilder::tag`](crate::TaskBuilder::tag).
///
/// Made from a `&'static str` without allocating, or from a `String`.
///
/// # Examples
///
/// ```
/// use taskplan::Tag;
///
/// let ui = Tag::from("ui");
/// let user = Tag::from(format!("user-{}", 7));
/// assert_eq!(ui.as_str(), "ui");
/// assert_eq!(user.to_string(), "user-7");
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(Cow<'static, str>);

impl Tag {
    /// Returns the tag's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&'static str> for Tag {
    fn from(name: &'static str) -> Tag {
        Tag(Cow::Borrowed(name))
    }
}

impl From<String> for Tag {
    fn from(name: String) -> Tag {
        Tag(Cow::Owned(name))
    }
}

impl Borrow<str> for Tag {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Tag {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// What a tagged task's header shares with the plan about its tag.
pub(crate) struct TagInfo {
    /// Index of the tag's lists and counts in the plan's locked state.
    pub(crate) index: usize,
    pub(crate) name: Tag,
    /// Outcomes of this tag's tasks, counted as the plan's are.
    pub(crate) outcomes: Outcomes,
}

/// Every tag a plan has seen.
pub(crate) struct TagRegistry {
    by_name: HashMap<Tag, Arc<TagInfo>>,
    /// The plan's name, for the tags' published series.
    #[cfg(feature = "metrics")]
    plan: Box<str>,
}

impl TagRegistry {
    pub(crate) fn new(plan: &str) -> TagRegistry {
        #[cfg(not(feature = "metrics"))]
        let _ = plan;
        TagRegistry {
            by_name: HashMap::new(),
            #[cfg(feature = "metrics")]
            plan: plan.into(),
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Arc<TagInfo>> {
        self.by_name.get(name)
    }

    pub(crate) fn get_or_insert(&mut self, name: Tag) -> Arc<TagInfo> {
        let index = self.by_name.len();
        Arc::clone(self.by_name.entry(name).or_insert_with_key(|name| {
            Arc::new(TagInfo {
                index,
                name: name.clone(),
                outcomes: Outcomes {
                    #[cfg(feature = "metrics")]
                    published: crate::engine::metrics::Published::for_tag(
                        &self.plan,
                        name.as_str(),
                    ),
                    ..Outcomes::default()
                },
            })
        }))
    }
}
