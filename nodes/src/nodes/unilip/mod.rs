//! UniLIP stage nodes: each wraps one step of the pipeline in `models::unilip`.

pub mod checkpoint;
pub mod clip_encode;
pub mod compose_objects;
pub mod condition;
pub mod convert;
pub mod distill;
pub mod dit_denoise;
pub mod edit_object;
pub mod edit_prompts;
pub mod flow_edit;
pub mod latent_project;
pub mod locate;
pub mod mllm_answer;
pub mod mllm_reason;
pub mod noise;
pub mod payload;
pub mod pixel_decode;
pub mod prompt;
pub mod query_embed;
pub mod rank_by_answers;
pub mod region;
pub mod relocate;
