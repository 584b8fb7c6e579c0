//! A prompt decomposed into the questions a faithful image answers in a known way (TIFA / DSG
//! style): what a unified model can ask its own understanding half about each of several
//! generated candidates, to keep the one that follows the prompt best.
//!
//! Every question uses a template of the VQA data ([`super::vqa`]), so a model trained on that
//! data has seen its wording: counts of every shape and colour of the domain (zero for the
//! absent ones, which catches extra objects), the colour of each group whose shape no other
//! group shares, the shape of each group whose colour no other group shares, and — when both
//! groups are single objects — whether the relation holds. Sizes are not asked (the VQA data
//! never asks them).

use super::spec::{GroupSpec, SceneSpec};
use super::style::Style;
use super::vqa::{QuestionKind, VqaQuestion};
use super::words::number_word;

/// The questions (with the answers an image matching `spec` gives) that check `spec` in
/// `style`'s words.
pub fn spec_questions(spec: &SceneSpec, style: &Style) -> Vec<VqaQuestion> {
    let groups = spec.groups();
    let question = |kind, question: String, answer: &str| VqaQuestion {
        kind,
        question,
        answer: answer.to_owned(),
    };
    let count = |of: &dyn Fn(&GroupSpec) -> bool| -> usize {
        groups.iter().filter(|g| of(g)).map(|g| g.count).sum()
    };
    let by_shape = style.shapes().iter().map(|&shape| {
        let noun = style.shape_word(shape, true).to_owned();
        (noun, count(&|g| g.shape == shape))
    });
    let by_colour = style.colours().iter().map(|&colour| {
        let noun = format!("{} objects", style.colour_word(colour));
        (noun, count(&|g| g.colour == colour))
    });
    let mut out: Vec<VqaQuestion> = by_shape
        .chain(by_colour)
        .map(|(noun, n)| {
            question(
                QuestionKind::Count,
                format!("how many {noun} are there ?"),
                number_word(n),
            )
        })
        .collect();
    for g in &groups {
        let colour = style.colour_word(g.colour);
        let shape = style.shape_word(g.shape, g.count != 1);
        let verb = if g.count == 1 { "is" } else { "are" };
        if groups.iter().filter(|o| o.shape == g.shape).count() == 1 {
            out.push(question(
                QuestionKind::Colour,
                format!("what colour {verb} the {shape} ?"),
                colour,
            ));
        }
        if groups.iter().filter(|o| o.colour == g.colour).count() == 1 {
            let object = if g.count == 1 { "object" } else { "objects" };
            out.push(question(
                QuestionKind::Shape,
                format!("what shape {verb} the {colour} {object} ?"),
                style.shape_word(g.shape, false),
            ));
        }
    }
    if let Some(related) = &spec.second {
        let (a, b) = (&spec.first, &related.group);
        if a.count == 1 && b.count == 1 {
            let describe = |g: &GroupSpec| {
                if a.shape == b.shape {
                    format!(
                        "{} {}",
                        style.colour_word(g.colour),
                        style.shape_word(g.shape, false)
                    )
                } else {
                    style.shape_word(g.shape, false).to_owned()
                }
            };
            out.push(question(
                QuestionKind::Relation,
                format!(
                    "is the {} {} the {} ?",
                    describe(a),
                    related.relation.phrase(),
                    describe(b)
                ),
                "yes",
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(caption: &str) -> Vec<(String, String)> {
        let spec = SceneSpec::parse(caption).expect("caption parses");
        spec_questions(&spec, &Style::default())
            .into_iter()
            .map(|q| (q.question, q.answer))
            .collect()
    }

    fn answer_to(questions: &[(String, String)], question: &str) -> Option<String> {
        questions
            .iter()
            .find(|(q, _)| q == question)
            .map(|(_, a)| a.clone())
    }

    #[test]
    fn counts_cover_every_shape_and_colour_with_zero_for_the_absent() {
        let style = Style::default();
        let q = asked("two red circles left of a blue square");
        assert_eq!(
            q.iter().filter(|(q, _)| q.starts_with("how many")).count(),
            style.shapes().len() + style.colours().len()
        );
        let a = |question: &str| answer_to(&q, question);
        assert_eq!(a("how many circles are there ?").as_deref(), Some("two"));
        assert_eq!(a("how many squares are there ?").as_deref(), Some("one"));
        assert_eq!(
            a("how many red objects are there ?").as_deref(),
            Some("two")
        );
        assert_eq!(
            a("how many blue objects are there ?").as_deref(),
            Some("one")
        );
        assert_eq!(a("how many stars are there ?").as_deref(), Some("zero"));
        assert_eq!(
            a("how many green objects are there ?").as_deref(),
            Some("zero")
        );
        assert_eq!(a("what colour are the circles ?").as_deref(), Some("red"));
        assert_eq!(
            a("what shape is the blue object ?").as_deref(),
            Some("square")
        );
        // A relation question only between two single objects.
        assert!(!q.iter().any(|(q, _)| q.starts_with("is the")));
    }

    #[test]
    fn single_objects_get_the_relation_asked_and_shared_attributes_are_not_asked() {
        let q = asked("a red circle above a blue circle");
        let a = |question: &str| answer_to(&q, question);
        assert_eq!(
            a("is the red circle above the blue circle ?").as_deref(),
            Some("yes")
        );
        assert_eq!(a("how many circles are there ?").as_deref(), Some("two"));
        // The shape is shared: "what colour is the circle ?" has no single answer.
        assert!(!q.iter().any(|(q, _)| q.starts_with("what colour")));
        assert_eq!(
            a("what shape is the red object ?").as_deref(),
            Some("circle")
        );

        let q = asked("a green star right of a red square");
        assert_eq!(
            answer_to(&q, "is the star right of the square ?").as_deref(),
            Some("yes")
        );
    }

    #[test]
    fn every_question_uses_the_vqa_vocabulary() {
        let vocab = crate::shapesworld::vocabulary();
        for caption in [
            "three small yellow triangles",
            "a large purple diamond below two orange stars",
        ] {
            for (q, a) in asked(caption) {
                for word in q.split(' ').chain(std::iter::once(a.as_str())) {
                    assert!(vocab.iter().any(|v| v == word), "{word:?} in {q:?}");
                }
            }
        }
    }
}
