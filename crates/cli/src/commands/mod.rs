pub mod bench;
pub mod cloud;
pub mod local;
pub mod plan;
pub mod sample_data;
pub mod sfn;
pub mod validate;
pub mod verify;

pub mod errors {
    pub fn markdown() -> String {
        ferry_core::error::catalogue_markdown()
    }
}
