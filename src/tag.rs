//! Tags: names that group tasks, so a whole kind of work can be moved to the
//! front of the queue, cancelled, or counted at once.
//!
//! A [`Tag`] is a plain name; what a plan keeps about a tag lives in the
//! engine (`engine::tags`), and only while one of the tag's tasks is queued
//! or running, so a tag may as well name a user or a connection as a kind
//! of work.

use std::borrow::{Borrow, Cow};
use std::fmt;

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
