//! ShapesWorld: a procedural, seeded dataset of simple coloured shapes for tiny
//! text-to-image, image-editing and VQA models, with a deterministic evaluator.
//!
//! - [`scene`]: shapes, colours, sizes, objects and scenes; [`style`]: domains.
//! - [`spec`]: what a caption asserts, its wording and its parser.
//! - [`layout`] / [`render`](mod@render): placing objects and drawing them (4 × 4 supersampling).
//! - [`edit`] / [`vqa`]: edit triplets and question–answer pairs.
//! - [`generator`] / [`write`](mod@write): random-access generation and writing splits to disk.
//! - [`detect`](mod@detect) / [`score`] / [`metrics`]: detector, GenEval-style and edit scores,
//!   VQA answer matching, PSNR and SSIM.
//!
//! Everything is a pure function of its inputs and seeds; nothing is learned.

pub mod detect;
pub mod edit;
pub mod generator;
pub mod layout;
pub mod metrics;
pub mod render;
pub mod scene;
pub mod score;
pub mod spec;
pub mod style;
pub mod verify;
pub mod vqa;
mod words;
pub mod write;

pub use detect::{detect, Detection};
pub use edit::{
    sample_edit, Direction, EditItem, EditKind, ObjectRef, PromptPair, EDIT_KIND_NAMES,
};
pub use generator::{CaptionItem, ConfigError, EditSample, GenConfig, Generator, Split, VqaItem};
pub use layout::{layout_spec, LayoutError};
pub use metrics::{psnr, ssim, MetricError};
pub use render::render;
pub use scene::{object_gap, Colour, Object, Scene, Shape, Size, MAX_RESOLUTION, MIN_RESOLUTION};
pub use score::{
    detected_objects, edit_score, geneval_objects, geneval_score, recover_objects,
    vqa_answer_correct, EditResult, GenEvalResult, ObjectRecovery,
};
pub use spec::{GroupSpec, ParseError, RelatedGroup, Relation, SceneSpec};
pub use style::{Domain, Style};
pub use vqa::{ask, sample_question, QuestionKind, VqaQuestion};
pub use words::vocabulary;
pub use write::{write_split, WriteError};
