//! Shared wording helpers and the closed vocabulary of every generated text.
//!
//! Texts are lowercase words separated by single spaces; questions end with a separate
//! "?" token. No other punctuation is ever emitted.

use super::scene::{Colour, Shape, Size};
use super::style::{self, Style};

/// Number words used for counts 0..=4 (index = count).
const NUMBER_WORDS: [&str; 5] = ["zero", "one", "two", "three", "four"];

/// Fixed grammar words of captions, edit instructions, questions and answers.
const GRAMMAR_WORDS: &[&str] = &[
    // captions
    "a", "an", "and", "nothing", "left", "right", "of", "above", "below", "small", "large",
    // edit instructions
    "make", "move", "the", "to", "up", "down", "add", "remove", "larger", "smaller", "swap",
    // questions and answers
    "how", "many", "are", "there", "what", "colour", "shape", "is", "object", "objects", "on", "at",
    "or", "top", "bottom", "yes", "no", "?",
];

/// Word for a count of at most four ("many" above that).
pub(super) fn number_word(count: usize) -> &'static str {
    NUMBER_WORDS.get(count).copied().unwrap_or("many")
}

/// Count as it appears in a caption: "a"/"an" for one (depending on `next`), else the
/// number word.
fn quantifier(count: usize, next: &str) -> &'static str {
    match count {
        1 if next.starts_with(['a', 'e', 'i', 'o', 'u']) => "an",
        1 => "a",
        n => number_word(n),
    }
}

/// Count word "one" .. "four" → count.
pub(super) fn count_from_word(word: &str) -> Option<usize> {
    match word {
        "a" | "an" => Some(1),
        w => NUMBER_WORDS.iter().position(|n| *n == w),
    }
}

/// Noun phrase for `count` objects, e.g. "a large red circle", "two blue squares".
pub(super) fn group_phrase(
    count: usize,
    size: Option<Size>,
    colour: Colour,
    shape: Shape,
    style: &Style,
) -> String {
    let mut words: Vec<&str> = size.iter().map(|s| s.word()).collect();
    words.push(style.colour_word(colour));
    words.push(style.shape_word(shape, count != 1));
    format!("{} {}", quantifier(count, words[0]), words.join(" "))
}

/// Every word (and the "?" token) that can appear in any generated caption, edit
/// instruction, question or answer of any domain, sorted and deduplicated.
pub fn vocabulary() -> Vec<String> {
    let mut words: Vec<String> = GRAMMAR_WORDS
        .iter()
        .chain(NUMBER_WORDS.iter())
        .copied()
        .chain(style::lexicon_words())
        .map(str::to_owned)
        .collect();
    words.sort();
    words.dedup();
    words
}
