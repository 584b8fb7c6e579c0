//! Integration tests of the ShapesWorld public API.

use std::collections::BTreeSet;
use std::path::PathBuf;

use image::RgbImage;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use unilip_nodes::shapesworld::*;

fn generator(seed: u64, split: Split, domain: Domain) -> Generator {
    Generator::new(GenConfig {
        resolution: 64,
        seed,
        split,
        domain,
    })
    .expect("valid config")
}

/// Every (seed, domain) generator used by the accuracy tests.
fn generators() -> Vec<Generator> {
    (0..2u64)
        .flat_map(|seed| Domain::ALL.map(|d| generator(seed, Split::Train, d)))
        .collect()
}

/// Adds gaussian noise with standard deviation `sigma` (in 8-bit levels).
fn add_noise(image: &RgbImage, sigma: f64, rng: &mut StdRng) -> RgbImage {
    let mut out = image.clone();
    for value in out.iter_mut() {
        let u1 = rng.random::<f64>().max(1e-12);
        let u2 = rng.random::<f64>();
        let gaussian = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        *value = (*value as f64 + sigma * gaussian).round().clamp(0.0, 255.0) as u8;
    }
    out
}

/// 3 × 3 box blur (edges averaged over the pixels present).
fn box_blur(image: &RgbImage) -> RgbImage {
    let (w, h) = (image.width() as i64, image.height() as i64);
    let raw = image.as_raw();
    let mut out = image.clone();
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let (mut sum, mut count) = (0u32, 0u32);
                for (nx, ny) in (-1..=1).flat_map(|dy| (-1..=1).map(move |dx| (x + dx, y + dy))) {
                    if nx >= 0 && ny >= 0 && nx < w && ny < h {
                        sum += raw[((ny * w + nx) * 3 + c) as usize] as u32;
                        count += 1;
                    }
                }
                out.get_pixel_mut(x as u32, y as u32).0[c as usize] =
                    (sum as f32 / count as f32).round() as u8;
            }
        }
    }
    out
}

fn rate(passed: usize, total: usize) -> f64 {
    passed as f64 / total as f64
}

#[test]
fn items_are_deterministic_and_streams_differ() {
    let a = generator(3, Split::Train, Domain::Default);
    let b = generator(3, Split::Train, Domain::Default);
    for i in [0, 1, 17, 1000] {
        let (x, y) = (a.caption_item(i), b.caption_item(i));
        assert_eq!(x.scene, y.scene);
        assert_eq!(x.caption, y.caption);
        assert_eq!(x.image.as_raw(), y.image.as_raw());
        assert_eq!(a.edit_item(i), b.edit_item(i));
        assert_eq!(a.vqa_item(i), b.vqa_item(i));
    }
    // Random access: order of requests does not matter.
    assert_eq!(a.caption_item(5).scene, {
        let _ = b.caption_item(9);
        b.caption_item(5).scene
    });
    let scenes = |g: &Generator| (0..20).map(|i| g.caption_item(i).scene).collect::<Vec<_>>();
    let base = scenes(&a);
    assert_ne!(
        base,
        scenes(&generator(4, Split::Train, Domain::Default)),
        "seeds must differ"
    );
    assert_ne!(
        base,
        scenes(&generator(3, Split::Val, Domain::Default)),
        "train and val must differ"
    );
    let distinct: BTreeSet<String> = base.iter().map(Scene::caption).collect();
    assert!(distinct.len() > 10, "items within a stream vary");
}

#[test]
fn generator_rejects_bad_resolution() {
    for resolution in [0, 31, 257] {
        let config = GenConfig {
            resolution,
            ..GenConfig::default()
        };
        assert_eq!(
            Generator::new(config).err(),
            Some(ConfigError::Resolution(resolution))
        );
    }
    for resolution in [MIN_RESOLUTION, MAX_RESOLUTION] {
        let g = Generator::new(GenConfig {
            resolution,
            ..GenConfig::default()
        })
        .expect("valid");
        assert_eq!(
            g.caption_item(0).image.dimensions(),
            (resolution, resolution)
        );
    }
}

#[test]
fn captions_round_trip_through_the_parser() {
    for g in generators() {
        for i in 0..150 {
            let item = g.caption_item(i);
            assert_eq!(
                SceneSpec::parse(&item.caption),
                Ok(item.spec),
                "{}",
                item.caption
            );
            assert_eq!(item.spec.caption_in(&g.style()), item.caption);
            assert_eq!(SceneSpec::parse(&item.spec.caption()), Ok(item.spec));
        }
    }
}

#[test]
fn rearrangements_reverse_the_relation_and_swap_colours_and_shapes() {
    let spec = SceneSpec::parse("three small red circles left of a blue square").unwrap();
    let captions: Vec<String> = spec
        .rearrangements()
        .iter()
        .map(SceneSpec::caption)
        .collect();
    assert_eq!(
        captions,
        [
            "three small red circles right of a blue square",
            "three small blue circles left of a red square",
            "three small red squares left of a blue circle",
        ]
    );
    assert!(SceneSpec::parse("two red circles")
        .unwrap()
        .rearrangements()
        .is_empty());
}

#[test]
fn group_regions_are_the_halves_that_hold_each_groups_objects() {
    let mut grounded = 0;
    for g in generators() {
        let style = g.style();
        for i in 0..150 {
            let item = g.caption_item(i);
            let regions = item.spec.group_regions(&style);
            let Some(related) = item.spec.second else {
                assert!(regions.is_empty(), "{}", item.caption);
                continue;
            };
            grounded += 1;
            let groups = [item.spec.first, related.group];
            assert_eq!(regions.len(), 2);
            for (group, (caption, [x0, y0, x1, y1])) in groups.iter().zip(&regions) {
                assert_eq!(*caption, group.phrase(&style));
                assert!(item.caption.contains(caption.as_str()), "{}", item.caption);
                // Each half spans half the canvas along the relation's axis.
                assert!(((x1 - x0) * (y1 - y0) - 0.5).abs() < 1e-6);
                let other = groups.iter().find(|o| *o != group).unwrap_or(group);
                let res = item.scene.resolution as f32;
                for o in item.scene.objects.iter().filter(|o| {
                    group.matches(o.shape, o.colour, o.size)
                        && !other.matches(o.shape, o.colour, o.size)
                }) {
                    let (x, y) = (o.cx / res, o.cy / res);
                    assert!(
                        (*x0..=*x1).contains(&x) && (*y0..=*y1).contains(&y),
                        "{}: object at ({x}, {y}) outside its group's half",
                        item.caption
                    );
                }
            }
        }
    }
    assert!(grounded > 100, "{grounded} two-group captions");
}

#[test]
fn parser_accepts_user_prompts_and_rejects_bad_ones() {
    let spec = SceneSpec::parse("Two red circles, to the LEFT of a blue square.").expect("parses");
    assert_eq!(
        spec.first,
        GroupSpec {
            count: 2,
            size: None,
            colour: Colour::Red,
            shape: Shape::Circle
        }
    );
    let second = spec.second.expect("two groups");
    assert_eq!(second.relation, Relation::LeftOf);
    assert_eq!(
        second.group,
        GroupSpec {
            count: 1,
            size: None,
            colour: Colour::Blue,
            shape: Shape::Square
        }
    );
    let spec = SceneSpec::parse("a photo of a large crimson disc above three small lemon boxes")
        .expect("parses");
    assert_eq!(
        spec.first,
        GroupSpec {
            count: 1,
            size: Some(Size::Large),
            colour: Colour::Red,
            shape: Shape::Circle
        }
    );
    let second = spec.second.expect("two groups");
    assert_eq!(
        second.group,
        GroupSpec {
            count: 3,
            size: Some(Size::Small),
            colour: Colour::Yellow,
            shape: Shape::Square
        }
    );
    assert_eq!(
        spec.caption(),
        "a large red circle above three small yellow squares"
    );
    assert_eq!(
        SceneSpec::parse("an orange star").map(|s| s.caption()),
        Ok("an orange star".to_owned())
    );
    for bad in [
        "",
        "  ?",
        "two red",
        "a red circle beside a blue square",
        "zero red circles",
        "five red circles",
        "a red circle left a blue square",
        "a red circle and",
    ] {
        assert!(SceneSpec::parse(bad).is_err(), "{bad:?} should not parse");
    }
    assert_eq!(SceneSpec::parse(""), Err(ParseError::Empty));
}

#[test]
fn every_colour_and_shape_word_names_one_slot() {
    for domain in Domain::ALL {
        let style = Style::from(domain);
        for &colour in style.colours() {
            for &shape in style.shapes() {
                let caption = format!(
                    "a {} {}",
                    style.colour_word(colour),
                    style.shape_word(shape, false)
                );
                let spec = SceneSpec::parse(&caption).expect("parses");
                assert_eq!(
                    (spec.first.colour, spec.first.shape),
                    (colour, shape),
                    "{caption}"
                );
            }
        }
    }
}

/// Every text a generator emits for item `i`.
fn texts(g: &Generator, i: u64) -> Vec<String> {
    let caption = g.caption_item(i);
    let edit = g.edit_item(i);
    let vqa = g.vqa_item(i);
    vec![
        caption.caption,
        caption.scene.caption(),
        edit.item.instruction,
        edit.item.source.caption(),
        edit.item.target.caption(),
        vqa.question,
        vqa.answer,
    ]
}

#[test]
fn generated_text_uses_only_the_vocabulary() {
    let vocabulary = vocabulary();
    let mut sorted = vocabulary.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(vocabulary, sorted, "sorted and deduplicated");
    let known: BTreeSet<&str> = vocabulary.iter().map(String::as_str).collect();
    let mut used = BTreeSet::new();
    for g in generators() {
        for i in 0..150 {
            for text in texts(&g, i) {
                assert_eq!(text, text.trim());
                for word in text.split(' ') {
                    assert!(
                        known.contains(word),
                        "{word:?} in {text:?} is not in the vocabulary"
                    );
                    used.insert(word.to_owned());
                }
            }
        }
    }
    assert!(
        used.len() * 10 >= known.len() * 8,
        "most of the vocabulary is used ({} of {})",
        used.len(),
        known.len()
    );
}

#[test]
fn scenes_are_valid_and_realise_their_specs() {
    for g in generators() {
        for i in 0..150 {
            let item = g.caption_item(i);
            let scene = &item.scene;
            assert!(scene.is_valid(), "overlap or outside: {scene:?}");
            assert!((1..=4).contains(&scene.objects.len()));
            for object in &scene.objects {
                let r = object.bounding_radius(scene.resolution);
                assert!(object.cx - r >= 0.0 && object.cy - r >= 0.0);
                assert!(object.cx + r <= 64.0 && object.cy + r <= 64.0);
                assert!(
                    g.style().colours().contains(&object.colour)
                        && g.style().shapes().contains(&object.shape)
                );
            }
            for (k, a) in scene.objects.iter().enumerate() {
                for b in &scene.objects[k + 1..] {
                    let gap = (a.cx - b.cx).hypot(a.cy - b.cy)
                        - a.bounding_radius(64)
                        - b.bounding_radius(64);
                    assert!(gap >= object_gap(64) - 1e-3, "objects too close: {gap}");
                }
            }
            assert!(
                geneval_objects(&scene.objects, &item.spec, 64).correct,
                "{}: {scene:?}",
                item.caption
            );
        }
    }
}

#[test]
fn render_draws_background_and_objects() {
    let style = Style::from(Domain::Dark);
    let object = Object {
        shape: Shape::Square,
        colour: Colour::Green,
        size: Size::Large,
        cx: 20.0,
        cy: 30.0,
    };
    let scene = Scene {
        objects: vec![object],
        resolution: 64,
        style,
    };
    let image = render(&scene);
    assert_eq!(image.dimensions(), (64, 64));
    assert_eq!(image.get_pixel(20, 30).0, style.rgb(Colour::Green));
    assert_eq!(image.get_pixel(60, 60).0, style.background());
    let covered = image.pixels().filter(|p| p.0 != style.background()).count() as f32;
    let area = Shape::Square.area(Size::Large.radius(64));
    assert!(
        (covered - area).abs() < 0.2 * area,
        "covered {covered} vs area {area}"
    );
}

#[test]
fn detector_finds_every_shape_colour_and_size_in_isolation() {
    for domain in Domain::ALL {
        let style = Style::from(domain);
        for &colour in style.colours() {
            for &shape in style.shapes() {
                for size in Size::ALL {
                    let object = Object {
                        shape,
                        colour,
                        size,
                        cx: 30.3,
                        cy: 33.7,
                    };
                    let image = render(&Scene {
                        objects: vec![object],
                        resolution: 64,
                        style,
                    });
                    let found = detect(&image, &style);
                    assert_eq!(found.len(), 1, "{domain:?} {object:?}");
                    let d = found[0];
                    assert_eq!(
                        (d.shape, d.colour, d.size),
                        (shape, colour, size),
                        "{domain:?}"
                    );
                    assert!(
                        (d.cx - 30.3).abs() < 0.5 && (d.cy - 33.7).abs() < 0.5,
                        "{d:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn geneval_scores_ground_truth_renders_and_rejects_wrong_prompts() {
    let mut rng = StdRng::seed_from_u64(11);
    let (mut clean, mut noisy, mut blurred, mut total, mut wrong_rejected, mut wrong_total) =
        (0, 0, 0, 0, 0, 0);
    for g in generators() {
        let style = g.style();
        for i in 0..64 {
            let item = g.caption_item(i);
            total += 1;
            let result = geneval_score(&item.image, &item.spec, &style);
            assert_eq!(result.correct, result.checks_passed == result.checks_total);
            assert_eq!(result.objects_asked as usize, item.spec.object_count());
            if result.correct {
                assert_eq!(result.objects_found, result.objects_asked);
            }
            clean += usize::from(result.correct);
            noisy += usize::from(
                geneval_score(&add_noise(&item.image, 8.0, &mut rng), &item.spec, &style).correct,
            );
            blurred +=
                usize::from(geneval_score(&box_blur(&item.image), &item.spec, &style).correct);
            if let Some(mut related) = item.spec.second {
                related.relation = match related.relation {
                    Relation::LeftOf => Relation::RightOf,
                    Relation::RightOf => Relation::LeftOf,
                    Relation::Above => Relation::Below,
                    Relation::Below => Relation::Above,
                };
                let wrong = SceneSpec {
                    second: Some(related),
                    ..item.spec
                };
                let result = geneval_score(&item.image, &wrong, &style);
                wrong_total += 1;
                wrong_rejected +=
                    usize::from(!result.correct && result.checks_passed + 1 == result.checks_total);
            }
        }
    }
    assert!(total >= 500);
    assert!(rate(clean, total) >= 0.99, "clean accuracy {clean}/{total}");
    assert!(rate(noisy, total) >= 0.95, "noisy accuracy {noisy}/{total}");
    assert!(
        rate(blurred, total) >= 0.95,
        "blurred accuracy {blurred}/{total}"
    );
    assert!(
        rate(wrong_rejected, wrong_total) >= 0.99,
        "wrong relations rejected {wrong_rejected}/{wrong_total}"
    );
}

#[test]
fn recovery_keeps_ground_truth_and_names_the_object_that_changed() {
    let mut total = 0;
    let mut kept = 0;
    for g in generators() {
        let style = g.style();
        for i in 0..64 {
            let item = g.caption_item(i);
            let found = detected_objects(&item.image, &style);
            let recovered = recover_objects(&item.scene.objects, &found, 64);
            assert_eq!(recovered.len(), item.scene.objects.len());
            total += recovered.len();
            kept += recovered
                .iter()
                .filter(|r| r.found && r.shape_kept && r.size_kept)
                .count();
        }
    }
    assert!(rate(kept, total) >= 0.99, "kept {kept}/{total}");

    let style = Style::default();
    let object = |shape, cx| Object {
        shape,
        colour: style.colours()[0],
        size: Size::Large,
        cx,
        cy: 32.0,
    };
    let truth = vec![object(Shape::Star, 16.0), object(Shape::Square, 46.0)];
    let rounded = render(&Scene {
        objects: vec![object(Shape::Circle, 16.0)],
        resolution: 64,
        style,
    });
    let found = detected_objects(&rounded, &style);
    let recovered = recover_objects(&truth, &found, 64);
    let flags: Vec<_> = recovered
        .iter()
        .map(|r| (r.object.shape, r.found, r.shape_kept, r.size_kept))
        .collect();
    assert_eq!(
        flags,
        [
            (Shape::Star, true, false, true),
            (Shape::Square, false, false, false)
        ]
    );
}

#[test]
fn geneval_counts_checks() {
    let style = Style::default();
    let blank = render(&Scene {
        objects: Vec::new(),
        resolution: 64,
        style,
    });
    let one = SceneSpec::parse("two red circles").expect("parses");
    assert_eq!(
        geneval_score(&blank, &one, &style),
        GenEvalResult {
            correct: false,
            checks_passed: 0,
            checks_total: 3,
            colours: false,
            objects_found: 0,
            objects_asked: 2,
        }
    );
    let two = SceneSpec::parse("a red circle above a blue square").expect("parses");
    let result = geneval_score(&blank, &two, &style);
    assert_eq!(
        (result.correct, result.checks_passed, result.checks_total),
        (false, 0, 6)
    );
    let objects = [Object {
        shape: Shape::Circle,
        colour: Colour::Red,
        size: Size::Small,
        cx: 32.0,
        cy: 12.0,
    }];
    let partial = geneval_objects(&objects, &two, 64);
    assert_eq!((partial.checks_passed, partial.checks_total), (2, 6));
    // Red is there, blue is not.
    assert!(!partial.colours);
    let both = [
        objects[0],
        Object {
            shape: Shape::Circle,
            colour: Colour::Blue,
            ..objects[0]
        },
    ];
    let colours_only = geneval_objects(&both, &two, 64);
    assert!(colours_only.colours && !colours_only.correct);
    assert!((partial.fraction() - 1.0 / 3.0).abs() < 1e-6);
}

#[test]
fn edit_scores_ground_truth_and_detects_no_op() {
    let (mut full, mut total) = (0, 0);
    for g in generators() {
        let style = g.style();
        for i in 0..64 {
            let sample = g.edit_item(i);
            let result = edit_score(
                &sample.source_image,
                &sample.target_image,
                &sample.item,
                &style,
            );
            total += 1;
            full += usize::from(result.score == 1.0 && result.change_made && result.preserved);
            let no_op = edit_score(
                &sample.source_image,
                &sample.source_image,
                &sample.item,
                &style,
            );
            assert!(
                !no_op.change_made,
                "{}: no-op counted as change",
                sample.item.instruction
            );
            assert_eq!(no_op.score, 0.0);
        }
    }
    assert!(total >= 500);
    assert!(rate(full, total) >= 0.99, "edit accuracy {full}/{total}");
}

fn only_difference(source: &Scene, target: &Scene) -> Vec<(Object, Object)> {
    assert_eq!(source.objects.len(), target.objects.len());
    source
        .objects
        .iter()
        .zip(&target.objects)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| (*a, *b))
        .collect()
}

#[test]
fn edits_change_exactly_what_the_instruction_says() {
    let mut kinds = BTreeSet::new();
    for g in generators() {
        for i in 0..100 {
            let item = g.edit_item(i).item;
            let (source, target) = (&item.source, &item.target);
            assert!(source.is_valid() && target.is_valid());
            assert_eq!(item.instruction, item.kind.instruction(&g.style()));
            for r in item.kind.touched() {
                assert_eq!(
                    source.objects.iter().filter(|o| r.matches(o)).count(),
                    1,
                    "ambiguous reference"
                );
            }
            kinds.insert(item.kind.name());
            match item.kind {
                EditKind::Recolour { object, to } => {
                    let diff = only_difference(source, target);
                    assert_eq!(diff.len(), 1);
                    assert!(
                        object.matches(&diff[0].0)
                            && diff[0].1
                                == Object {
                                    colour: to,
                                    ..diff[0].0
                                }
                    );
                    assert_ne!(to, object.colour);
                }
                EditKind::Move { object, direction } => {
                    let diff = only_difference(source, target);
                    assert_eq!(diff.len(), 1);
                    let (a, b) = diff[0];
                    assert!(
                        object.matches(&a)
                            && Object {
                                cx: a.cx,
                                cy: a.cy,
                                ..b
                            } == a
                    );
                    let (ux, uy) = direction.unit();
                    assert!((b.cx - a.cx) * ux + (b.cy - a.cy) * uy >= 0.2 * 64.0 - 1e-3);
                }
                EditKind::Add { object } => {
                    assert_eq!(&target.objects[..source.objects.len()], &source.objects[..]);
                    assert_eq!(target.objects.len(), source.objects.len() + 1);
                    assert!(object.matches(&target.objects[source.objects.len()]));
                    assert!(object.find(source).is_none());
                }
                EditKind::Remove { object } => {
                    let kept: Vec<Object> = source
                        .objects
                        .iter()
                        .filter(|o| !object.matches(o))
                        .copied()
                        .collect();
                    assert_eq!(kept, target.objects);
                    assert_eq!(kept.len() + 1, source.objects.len());
                }
                EditKind::Resize { object, to } => {
                    let diff = only_difference(source, target);
                    assert_eq!(diff.len(), 1);
                    assert!(
                        object.matches(&diff[0].0)
                            && diff[0].1
                                == Object {
                                    size: to,
                                    ..diff[0].0
                                }
                    );
                    assert_ne!(to, diff[0].0.size);
                }
                EditKind::Swap { first, second } => {
                    let diff = only_difference(source, target);
                    assert_eq!(diff.len(), 2);
                    let a = *first.find(source).expect("first");
                    let b = *second.find(source).expect("second");
                    assert_eq!(
                        *first.find(target).expect("first"),
                        Object {
                            cx: b.cx,
                            cy: b.cy,
                            ..a
                        }
                    );
                    assert_eq!(
                        *second.find(target).expect("second"),
                        Object {
                            cx: a.cx,
                            cy: a.cy,
                            ..b
                        }
                    );
                }
            }
        }
    }
    assert_eq!(kinds.len(), 6, "all edit kinds occur: {kinds:?}");
}

/// The unique object a question's description ("star" / "red star") refers to.
fn resolve<'a>(scene: &'a Scene, words: &[&str]) -> &'a Object {
    let style = &scene.style;
    let matches: Vec<&Object> = scene
        .objects
        .iter()
        .filter(|o| match words {
            [shape] => style.shape_word(o.shape, false) == *shape,
            [colour, shape] => {
                style.colour_word(o.colour) == *colour && style.shape_word(o.shape, false) == *shape
            }
            _ => false,
        })
        .collect();
    assert_eq!(matches.len(), 1, "ambiguous description {words:?}");
    matches[0]
}

/// Independent answer to a generated question, from the scene alone.
fn answer(scene: &Scene, question: &str) -> String {
    let style = &scene.style;
    let words: Vec<&str> = question.split(' ').collect();
    let half = scene.resolution as f32 / 2.0;
    let count_word = |n: usize| ["zero", "one", "two", "three", "four"][n].to_owned();
    match words.as_slice() {
        ["how", "many", colour, "objects", "are", "there", "?"] => count_word(
            scene
                .objects
                .iter()
                .filter(|o| style.colour_word(o.colour) == *colour)
                .count(),
        ),
        ["how", "many", shapes, "are", "there", "?"] => count_word(
            scene
                .objects
                .iter()
                .filter(|o| style.shape_word(o.shape, true) == *shapes)
                .count(),
        ),
        ["what", "colour", "is", "the", shape, "?"] => style
            .colour_word(resolve(scene, &[shape]).colour)
            .to_owned(),
        ["what", "colour", "are", "the", shapes, "?"] => {
            let objects: Vec<&Object> = scene
                .objects
                .iter()
                .filter(|o| style.shape_word(o.shape, true) == *shapes)
                .collect();
            assert!(objects.len() > 1, "{question}");
            assert!(objects.iter().all(|o| o.colour == objects[0].colour));
            style.colour_word(objects[0].colour).to_owned()
        }
        ["what", "shape", verb, "the", colour, noun, "?"] => {
            let objects: Vec<&Object> = scene
                .objects
                .iter()
                .filter(|o| style.colour_word(o.colour) == *colour)
                .collect();
            match (*verb, *noun) {
                ("is", "object") => assert_eq!(objects.len(), 1),
                ("are", "objects") => assert!(objects.len() > 1),
                _ => panic!("unknown question form {question:?}"),
            }
            assert!(objects.iter().all(|o| o.shape == objects[0].shape));
            style.shape_word(objects[0].shape, false).to_owned()
        }
        ["is", "the", rest @ .., "on", "the", "left", "or", "the", "right", "?"] => {
            let o = resolve(scene, rest);
            assert!((o.cx - half).abs() >= 0.1 * 64.0);
            (if o.cx < half { "left" } else { "right" }).to_owned()
        }
        ["is", "the", rest @ .., "at", "the", "top", "or", "the", "bottom", "?"] => {
            let o = resolve(scene, rest);
            assert!((o.cy - half).abs() >= 0.1 * 64.0);
            (if o.cy < half { "top" } else { "bottom" }).to_owned()
        }
        ["is", "the", rest @ .., "?"] => {
            let split = rest
                .iter()
                .position(|w| *w == "the")
                .expect("second object");
            let (first, second) = (&rest[..split], &rest[split + 1..]);
            let (relation, a_words) = match first {
                [a @ .., "left", "of"] => (Relation::LeftOf, a),
                [a @ .., "right", "of"] => (Relation::RightOf, a),
                [a @ .., "above"] => (Relation::Above, a),
                [a @ .., "below"] => (Relation::Below, a),
                _ => panic!("unknown relation in {question:?}"),
            };
            let (a, b) = (resolve(scene, a_words), resolve(scene, second));
            let separation = relation.separation((a.cx, a.cy), (b.cx, b.cy));
            assert!(separation.abs() >= 0.1 * 64.0, "unclear relation");
            (if separation > 0.0 { "yes" } else { "no" }).to_owned()
        }
        _ => panic!("unknown question form {question:?}"),
    }
}

#[test]
fn vqa_answers_are_consistent_with_the_scene() {
    let mut kinds = BTreeSet::new();
    for g in generators() {
        for i in 0..100 {
            let item = g.vqa_item(i);
            assert_eq!(item.scene, g.caption_item(i).scene);
            assert_eq!(
                item.answer,
                answer(&item.scene, &item.question),
                "{}",
                item.question
            );
            assert!(!item.answer.contains(' '));
            kinds.insert(format!("{:?}", item.kind));
        }
    }
    assert_eq!(kinds.len(), 5, "all question kinds occur: {kinds:?}");
}

#[test]
fn vqa_asks_about_groups_so_counting_does_not_dominate() {
    let g = generator(0, Split::Val, Domain::Default);
    let items: Vec<_> = (0..400).map(|i| g.vqa_item(i)).collect();
    let share = |kind: QuestionKind| {
        items.iter().filter(|q| q.kind == kind).count() as f64 / items.len() as f64
    };
    // Single-group scenes ("three yellow diamonds") used to allow only counting (58 % count).
    assert!(
        share(QuestionKind::Count) < 0.4,
        "count share {}",
        share(QuestionKind::Count)
    );
    for kind in [QuestionKind::Colour, QuestionKind::Shape] {
        assert!(share(kind) > 0.2, "{kind:?} share {}", share(kind));
    }
    for form in ["what colour are the ", "what shape are the "] {
        assert!(
            items.iter().any(|q| q.question.starts_with(form)),
            "no group question `{form}…`"
        );
    }
}

#[test]
fn vqa_answer_matching_normalises() {
    assert!(vqa_answer_correct("Two.", "two"));
    assert!(vqa_answer_correct(" 2 ", "two"));
    assert!(vqa_answer_correct("YES!", "yes"));
    assert!(vqa_answer_correct("0", "zero"));
    assert!(!vqa_answer_correct("three", "two"));
    assert!(!vqa_answer_correct("", "two"));
}

#[test]
fn psnr_and_ssim() {
    let g = generator(0, Split::Val, Domain::Pastel);
    let image = g.caption_item(0).image;
    assert_eq!(psnr(&image, &image), Ok(f64::INFINITY));
    assert!((ssim(&image, &image).expect("same size") - 1.0).abs() < 1e-9);
    let mut shifted = image.clone();
    shifted
        .iter_mut()
        .for_each(|v| *v = if *v < 255 { *v + 1 } else { *v - 1 });
    let value = psnr(&image, &shifted).expect("same size");
    assert!((value - 20.0 * 255f64.log10()).abs() < 1e-9, "{value}");
    let noisy = add_noise(&image, 8.0, &mut StdRng::seed_from_u64(1));
    let (p, s) = (
        psnr(&image, &noisy).expect("ok"),
        ssim(&image, &noisy).expect("ok"),
    );
    assert!(p > 25.0 && p < 40.0, "{p}");
    assert!(s > 0.3 && s < 0.99, "{s}");
    assert!(ssim(&image, &box_blur(&image)).expect("ok") > s);
    let small = RgbImage::new(8, 8);
    assert!(matches!(
        psnr(&image, &small),
        Err(MetricError::SizeMismatch { .. })
    ));
    assert!(matches!(
        ssim(&small, &small),
        Err(MetricError::TooSmall(_))
    ));
}

#[test]
fn scenes_serialise_round_trip() {
    let g = generator(1, Split::Train, Domain::Geometric);
    let item = g.caption_item(2);
    let json = serde_json::to_string(&(&item.scene, &item.spec)).expect("serialises");
    let back: (Scene, SceneSpec) = serde_json::from_str(&json).expect("deserialises");
    assert_eq!(back, (item.scene, item.spec));
    let edit = g.edit_item(2).item;
    let back: EditItem =
        serde_json::from_str(&serde_json::to_string(&edit).expect("serialises")).expect("parses");
    assert_eq!(back, edit);
}

#[test]
fn write_split_writes_the_expected_files() {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("shapesworld-test-{}", std::process::id()));
    let config = GenConfig {
        resolution: 48,
        seed: 9,
        split: Split::Val,
        domain: Domain::Pastel,
    };
    let n = 3;
    write_split(&dir, &config, n).expect("writes");
    let g = Generator::new(config).expect("valid");
    for i in 0..n {
        let name = format!("{i:06}");
        let caption = g.caption_item(i as u64);
        let text =
            std::fs::read_to_string(dir.join(format!("captions/{name}.txt"))).expect("caption");
        assert_eq!(text, format!("{}\n", caption.caption));
        let png = image::open(dir.join(format!("captions/{name}.png")))
            .expect("png")
            .to_rgb8();
        assert_eq!(png.as_raw(), caption.image.as_raw());
        let edit = g.edit_item(i as u64);
        for (suffix, expected) in [
            ("source", &edit.source_image),
            ("target", &edit.target_image),
        ] {
            let png = image::open(dir.join(format!("edits/{name}.{suffix}.png")))
                .expect("png")
                .to_rgb8();
            assert_eq!(png.as_raw(), expected.as_raw());
        }
        let text =
            std::fs::read_to_string(dir.join(format!("edits/{name}.txt"))).expect("instruction");
        assert_eq!(text, format!("{}\n", edit.item.instruction));
    }
    let lines = |file: &str| -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(dir.join(file)).expect("jsonl");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    };
    let vqa = lines("vqa.jsonl");
    let scenes = lines("scenes.jsonl");
    let edits = lines("edits.jsonl");
    assert_eq!((vqa.len(), scenes.len(), edits.len()), (n, n, n));
    for (i, line) in vqa.iter().enumerate() {
        let item = g.vqa_item(i as u64);
        assert_eq!(line["image"], format!("captions/{i:06}.png"));
        assert_eq!(line["question"], item.question);
        assert_eq!(line["answer"], item.answer);
    }
    for (i, line) in scenes.iter().enumerate() {
        let item = g.caption_item(i as u64);
        let scene: Scene = serde_json::from_value(line["scene"].clone()).expect("scene");
        let spec: SceneSpec = serde_json::from_value(line["spec"].clone()).expect("spec");
        assert_eq!(
            (scene, spec, line["caption"].as_str()),
            (item.scene, item.spec, Some(item.caption.as_str()))
        );
    }
    for (i, line) in edits.iter().enumerate() {
        let edit: EditItem = serde_json::from_value(line["edit"].clone()).expect("edit");
        assert_eq!(edit, g.edit_item(i as u64).item);
    }
    let leftovers: Vec<_> = ["", "captions", "edits"]
        .iter()
        .flat_map(|sub| std::fs::read_dir(dir.join(sub)).expect("dir"))
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
    std::fs::remove_dir_all(&dir).expect("cleanup");
    assert!(matches!(
        write_split(
            &dir,
            &GenConfig {
                resolution: 8,
                ..config
            },
            1
        ),
        Err(WriteError::Config(ConfigError::Resolution(8)))
    ));
}

/// `data.shapesworld`'s params with `kind = vqa` and the given `questions`.
fn vqa_params(questions: &str) -> std::collections::BTreeMap<String, unilip_core::ParamValue> {
    use unilip_core::ParamValue;
    [
        ("kind".to_string(), ParamValue::Str("vqa".into())),
        ("n".to_string(), ParamValue::Int(200)),
        ("questions".to_string(), ParamValue::Str(questions.into())),
    ]
    .into()
}

#[test]
fn vqa_streams_of_one_question_kind_hold_only_that_kind_and_all_is_unchanged() {
    use unilip_nodes::nodes::train::data::shapes_dataset;
    use unilip_nodes::train::data::Dataset;

    let generator = Generator::new(GenConfig::default()).unwrap();
    let all = shapes_dataset(&vqa_params("all")).unwrap();
    for i in 0..20 {
        let want = generator.vqa_item(i as u64);
        let got = all.get(i).unwrap();
        assert_eq!((got.text, got.answer), (want.question, Some(want.answer)));
    }
    assert!(!all.fingerprint().contains("position"));

    let position = shapes_dataset(&vqa_params("position")).unwrap();
    let again = shapes_dataset(&vqa_params("position")).unwrap();
    let (mut answers, mut images) = (BTreeSet::new(), BTreeSet::new());
    for i in 0..60 {
        let s = position.get(i).unwrap();
        assert_eq!(
            s.answer,
            again.get(i).unwrap().answer,
            "item {i} is deterministic"
        );
        let answer = s.answer.unwrap();
        assert!(
            ["left", "right", "top", "bottom"].contains(&answer.as_str()),
            "item {i}: `{}` → `{answer}` is not a position question",
            s.text
        );
        answers.insert(answer);
        images.insert(
            s.image
                .data
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<u32>>(),
        );
    }
    assert_eq!(answers.len(), 4, "all four answers occur: {answers:?}");
    assert_eq!(images.len(), 60, "every item has its own scene");
    assert_ne!(position.fingerprint(), all.fingerprint());

    for kind in QuestionKind::ALL {
        let data = shapes_dataset(&vqa_params(kind.name())).unwrap();
        let item = Generator::new(GenConfig::default())
            .unwrap()
            .vqa_item_of_kind(3, kind);
        assert_eq!(item.kind, kind);
        assert_eq!(data.get(3).unwrap().answer, Some(item.answer));
    }

    let mut captions = vqa_params("position");
    captions.insert(
        "kind".into(),
        unilip_core::ParamValue::Str("captions".into()),
    );
    let err = shapes_dataset(&captions).unwrap_err();
    assert!(
        err.contains("`position`") && err.contains("`captions`"),
        "{err}"
    );
    let err = shapes_dataset(&vqa_params("size")).unwrap_err();
    assert!(err.contains("`size`"), "{err}");
}

/// `data.shapesworld`'s params with `kind = edits` and the given `edits`.
fn edit_params(edits: &str) -> std::collections::BTreeMap<String, unilip_core::ParamValue> {
    use unilip_core::ParamValue;
    [
        ("kind".to_string(), ParamValue::Str("edits".into())),
        ("n".to_string(), ParamValue::Int(200)),
        ("edits".to_string(), ParamValue::Str(edits.into())),
    ]
    .into()
}

#[test]
fn edit_streams_of_some_kinds_hold_only_those_kinds_and_all_is_unchanged() {
    use unilip_nodes::nodes::train::data::shapes_dataset;
    use unilip_nodes::train::data::Dataset;

    let generator = Generator::new(GenConfig::default()).unwrap();
    let all = shapes_dataset(&edit_params("all")).unwrap();
    for i in 0..10 {
        assert_eq!(
            all.get(i).unwrap().text,
            generator.edit_item(i as u64).item.instruction
        );
    }
    assert!(!all.fingerprint().contains("edits="));

    let kinds = ["recolour", "swap"];
    let some = shapes_dataset(&edit_params(" recolour , swap")).unwrap();
    let mut seen = BTreeSet::new();
    for i in 0..40 {
        let item = generator
            .edit_item_of_kinds(i, &kinds)
            .expect("known kinds");
        let kind = item.item.kind.name();
        assert!(kinds.contains(&kind), "item {i} is a `{kind}` edit");
        seen.insert(kind);
        let sample = some.get(i as usize).unwrap();
        assert_eq!(sample.text, item.item.instruction, "item {i}");
        assert_eq!(
            sample.image.data,
            unilip_nodes::train::data::HostImage::from(&item.target_image).data
        );
    }
    assert_eq!(seen.len(), 2, "both kinds occur: {seen:?}");
    assert_ne!(some.fingerprint(), all.fingerprint());
    assert!(generator.edit_item_of_kinds(0, &["paint"]).is_none());

    let err = shapes_dataset(&edit_params("recolour,paint")).unwrap_err();
    assert!(err.contains("`paint`") && err.contains("swap"), "{err}");
    let err = shapes_dataset(&edit_params(",")).unwrap_err();
    assert!(err.contains("``"), "{err}");
    let mut vqa = edit_params("swap");
    vqa.insert("kind".into(), unilip_core::ParamValue::Str("vqa".into()));
    let err = shapes_dataset(&vqa).unwrap_err();
    assert!(err.contains("`swap`") && err.contains("`vqa`"), "{err}");
}

#[test]
fn instructions_parse_back_to_their_edit_in_every_domain() {
    let mut kinds = BTreeSet::new();
    for g in generators() {
        for i in 0..100 {
            let item = g.edit_item(i).item;
            assert_eq!(
                EditKind::parse(&item.instruction),
                Ok(item.kind),
                "{}",
                item.instruction
            );
            kinds.insert(item.kind.name());
        }
    }
    assert_eq!(kinds.len(), EDIT_KIND_NAMES.len());
    // Punctuation and case do not matter; "an" is "a".
    assert_eq!(
        EditKind::parse("Add an orange Star."),
        Ok(EditKind::Add {
            object: ObjectRef {
                colour: Colour::Orange,
                shape: Shape::Star
            }
        })
    );
}

#[test]
fn instructions_outside_the_grammar_name_the_word_that_does_not_fit() {
    let err = |text: &str| EditKind::parse(text).unwrap_err().to_string();
    assert_eq!(
        err("paint the red circle blue"),
        "word 0 (\"paint\"): expected an edit (make, move, add, remove or swap)"
    );
    assert_eq!(
        err("make the red circle wobbly"),
        "word 4 (\"wobbly\"): expected a colour, \"larger\" or \"smaller\""
    );
    assert_eq!(
        err("move the red circle sideways"),
        "word 4 (\"sideways\"): expected a direction (left, right, up or down)"
    );
    assert_eq!(
        err("swap the red circle"),
        "the text ended early: expected \"and\""
    );
    assert_eq!(
        err("remove the red circle now"),
        "word 4 (\"now\"): expected the end of the text"
    );
    assert_eq!(err(" ? "), "no words");
}

#[test]
fn prompt_pairs_caption_the_object_before_and_after() {
    let style = Style::default();
    let pair = |text: &str| EditKind::parse(text).unwrap().prompt_pair(&style);
    let some = |a: &str| Some(a.to_string());
    assert_eq!(
        pair("make the red circle blue"),
        Some((some("a red circle"), some("a blue circle")))
    );
    assert_eq!(
        pair("make the orange triangle smaller"),
        Some((
            some("a large orange triangle"),
            some("a small orange triangle")
        ))
    );
    assert_eq!(
        pair("add an orange star"),
        Some((None, some("an orange star")))
    );
    assert_eq!(
        pair("remove the green square"),
        Some((some("a green square"), None))
    );
    assert_eq!(pair("move the red circle up"), None);
    assert_eq!(pair("swap the red circle and the blue square"), None);
    // Each caption parses as a ShapesWorld caption of one object.
    for g in generators() {
        for i in 0..50 {
            let kind = g.edit_item(i).item.kind;
            if let Some((before, after)) = kind.prompt_pair(&g.style()) {
                for caption in [before, after].into_iter().flatten() {
                    assert_eq!(
                        SceneSpec::parse(&caption).unwrap().object_count(),
                        1,
                        "{caption}"
                    );
                }
            }
        }
    }
}

#[test]
fn contrast_pairs_recolour_the_located_side_only() {
    let style = Style::default();
    let contrast = |text: &str| EditKind::parse(text).unwrap().contrast_pair(&style);
    let (before, after) = contrast("make the orange triangle smaller").unwrap();
    assert!(after.is_empty(), "{after:?}");
    assert_eq!(before.len(), style.colours().len() - 1);
    assert!(
        before.contains(&"a large red triangle".to_string()),
        "{before:?}"
    );
    assert!(!before.iter().any(|c| c.contains("orange")), "{before:?}");
    // Nothing before an add: the new object is located on the edited image.
    let (before, after) = contrast("add an orange star").unwrap();
    assert!(before.is_empty());
    assert!(after.contains(&"a blue star".to_string()), "{after:?}");
    assert_eq!(contrast("move the red circle up"), None);
    // In every domain, each contrast is the located caption with only its colour changed.
    for g in generators() {
        let style = g.style();
        for i in 0..50 {
            let kind = g.edit_item(i).item.kind;
            let (Some((before, after)), Some((b, a))) =
                (kind.prompt_pair(&style), kind.contrast_pair(&style))
            else {
                continue;
            };
            let (caption, contrasts) = match before {
                Some(caption) => (caption, b),
                None => (after.unwrap(), a),
            };
            let words: Vec<&str> = caption.split(' ').collect();
            for c in &contrasts {
                let spec = SceneSpec::parse(c).unwrap();
                assert_eq!(spec.object_count(), 1, "{c}");
                let differ = c.split(' ').zip(&words).filter(|(x, y)| x != *y).count();
                assert!(differ <= 2, "{caption} vs {c}"); // the colour, and "a" / "an"
                assert_ne!(c, &caption);
            }
        }
    }
}
