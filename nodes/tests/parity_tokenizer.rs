//! Tokenizer parity: the 17 reference encodings of `tokenizer/cases.json` (Python `tokenizers`
//! 0.22.1, `add_special_tokens=False`), and the prompt ids / masks of `unilip_e2e/io.safetensors`
//! rebuilt from the prompts in `unilip_e2e/config.json` with this crate's templates.

use std::path::PathBuf;

use serde_json::Value;
use unilip_nodes::fixtures;
use unilip_nodes::models::tokenizer::{self as tk, Tokenizer};
use unilip_nodes::weights::{read_json, Checkpoint};

/// `root()/name` if it exists; `None` (skip) when absent and the root is the default.
fn fixture_dir(name: &str) -> Option<PathBuf> {
    let dir = fixtures::root().join(name);
    if dir.exists() {
        return Some(dir);
    }
    assert!(
        !fixtures::root_is_explicit(),
        "fixture {} not found",
        dir.display()
    );
    eprintln!("skipping: fixture {} not found", dir.display());
    None
}

fn load_real() -> Option<(Tokenizer, Value)> {
    let dir = fixture_dir("tokenizer")?;
    let tok = Tokenizer::from_file(dir.join("tokenizer.json")).expect("load tokenizer.json");
    let cases = read_json(&dir.join("cases.json")).expect("read cases.json");
    Some((tok, cases))
}

#[test]
fn parity_tokenizer_cases() {
    let Some((tok, cases)) = load_real() else {
        return;
    };
    assert_eq!(
        tok.vocab_size() as u64,
        cases["vocab_size"].as_u64().expect("vocab_size"),
        "vocab_size"
    );
    let list = cases["cases"].as_array().expect("cases");
    assert_eq!(list.len(), 17, "number of cases");
    for (i, case) in list.iter().enumerate() {
        let text = case["text"].as_str().expect("text");
        let want: Vec<u32> = case["ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|v| v.as_u64().expect("id") as u32)
            .collect();
        let got = tok.encode(text).expect("encode");
        assert_eq!(got, want, "case {i} ids for {text:?}");
        let decoded = tok.decode(&got, false).expect("decode");
        assert_eq!(
            decoded,
            case["decoded"].as_str().expect("decoded"),
            "case {i} decoded"
        );
    }
}

#[test]
fn parity_tokenizer_special_ids_and_templates() {
    let Some((tok, cases)) = load_real() else {
        return;
    };
    let s = tok.special();
    assert_eq!(
        [
            s.endoftext,
            s.im_start,
            s.im_end,
            s.img_start,
            s.img_end,
            s.img_context
        ],
        [151643, 151644, 151645, 151665, 151666, 151667],
        "special ids"
    );
    assert_eq!(
        tok.token_to_id("<IMG_CONTEXT>"),
        Some(151667),
        "token_to_id"
    );
    assert_eq!(
        tok.id_to_token(151665).as_deref(),
        Some("<img>"),
        "id_to_token"
    );
    // The fixture's own T2I case: t2i("Generate an image: two dogs playing in the snow").
    let text = cases["cases"][3]["text"].as_str().expect("case 3");
    assert_eq!(
        tk::generation_prompt("two dogs playing in the snow"),
        text,
        "generation_prompt"
    );
    // Special tokens survive decoding unless skipped.
    let ids = tok.encode(&tk::generation_negative()).expect("encode");
    assert_eq!(
        tok.decode(&ids, true).expect("decode"),
        "user\nGenerate an image.\nassistant\n",
        "skip_special"
    );
    // Edit: exactly n context tokens inside <img> ... </img>, once per prompt.
    for p in [tk::edit_prompt("make it red", 256), tk::edit_negative(256)] {
        let ids = tok.encode(&p).expect("encode");
        assert_eq!(
            ids.iter().filter(|&&t| t == s.img_context).count(),
            256,
            "IMG_CONTEXT count"
        );
        assert_eq!(
            ids.iter().filter(|&&t| t == s.img_end).count(),
            1,
            "</img> count"
        );
        assert_eq!(
            ids.last(),
            Some(&s.img_start),
            "edit prompt ends with <img>"
        );
    }
    // Understanding (internvl2_5): image block first, then the question.
    let u = tk::understanding_prompt("What is this?", 4, Some(tk::INTERNVL_SYSTEM_MESSAGE));
    let want = format!(
        "<|im_start|>system\n{}<|im_end|>\n<|im_start|>user\n<img>{}</img>\nWhat is this?<|im_end|>\n<|im_start|>assistant\n",
        tk::INTERNVL_SYSTEM_MESSAGE,
        "<IMG_CONTEXT>".repeat(4)
    );
    assert_eq!(u, want, "understanding_prompt");
    assert_eq!(
        tk::understanding_prompt("hi", 0, None),
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
        "text-only understanding_prompt"
    );
}

/// Strips `prefix` and `suffix` from `s`, naming `what` on failure.
fn between<'a>(s: &'a str, prefix: &str, suffix: &str, what: &str) -> &'a str {
    s.strip_prefix(prefix)
        .and_then(|r| r.strip_suffix(suffix))
        .unwrap_or_else(|| panic!("{what}: unexpected prompt {s:?}"))
}

/// Compares the batch encoding of `[pos, neg]` with `{name}.input_ids_real` / `{name}.attention_mask`.
fn check_batch(tok: &Tokenizer, io: &Checkpoint, name: &str, pos: &str, neg: &str) {
    let batch = tok.encode_batch(&[pos, neg]).expect("encode_batch");
    for (key, rows) in [
        ("input_ids_real", &batch.ids),
        ("attention_mask", &batch.attention_mask),
    ] {
        let key = format!("{name}.{key}");
        let (shape, want) = io.read_i64(&key).unwrap_or_else(|e| panic!("{key}: {e}"));
        let got: Vec<i64> = rows.iter().flatten().map(|&v| i64::from(v)).collect();
        assert_eq!(vec![rows.len(), rows[0].len()], shape, "{key} shape");
        assert_eq!(got, want, "{key}");
    }
}

#[test]
fn parity_tokenizer_e2e_prompts() {
    let Some((tok, _)) = load_real() else { return };
    let Some(dir) = fixture_dir("unilip_e2e") else {
        return;
    };
    let cfg = read_json(&dir.join("config.json")).expect("config.json");
    let io = Checkpoint::open(dir.join("io.safetensors")).expect("io.safetensors");
    let tiny = &cfg["tiny"];
    assert_eq!(
        tk::chat_template("{input}"),
        tiny["prompt_template"].as_str().expect("prompt_template")
    );
    let n = tiny["n_image_tokens"].as_u64().expect("n_image_tokens") as usize;
    let prompt = |task: &str, i: usize| -> String {
        let s = tiny["prompts"][task][i]
            .as_str()
            .unwrap_or_else(|| panic!("prompts.{task}[{i}]"));
        // The config abbreviates the image block as `<IMG_CONTEXT>x{n}`.
        s.replace(&format!("<IMG_CONTEXT>x{n}"), &"<IMG_CONTEXT>".repeat(n))
    };

    let (pos, neg) = (prompt("t2i", 0), prompt("t2i", 1));
    let p = between(
        &pos,
        "<|im_start|>user\nGenerate an image: ",
        "<|im_end|>\n<|im_start|>assistant\n<img>",
        "t2i",
    );
    assert_eq!(tk::generation_prompt(p), pos, "generation_prompt");
    assert_eq!(tk::generation_negative(), neg, "generation_negative");
    check_batch(&tok, &io, "t2i", &pos, &neg);

    let (pos, neg) = (prompt("edit", 0), prompt("edit", 1));
    let suffix = format!(
        "\n{}<|im_end|>\n<|im_start|>assistant\n<img>",
        tk::image_block(n)
    );
    let instr = between(&pos, "<|im_start|>user\nEdit the image: ", &suffix, "edit");
    assert_eq!(tk::edit_prompt(instr, n), pos, "edit_prompt");
    assert_eq!(tk::edit_negative(n), neg, "edit_negative");
    check_batch(&tok, &io, "edit", &pos, &neg);
}

#[test]
fn parity_tokenizer_word_level_roundtrip() {
    let words = [
        "a", "red", "cube", "on", "blue", "sphere", "Generate", "an", "image", ":", ".",
    ];
    let built = tk::build_word_level(&words, &["<quad>"]).expect("build");
    let path = std::env::temp_dir().join(format!("unilip_word_level_{}.json", std::process::id()));
    let mem = Tokenizer::from_inner(built, "<in-memory>").expect("wrap");
    mem.save(&path).expect("save");
    let tok = Tokenizer::from_file(&path).expect("reload tokenizer.json");
    std::fs::remove_file(&path).ok();

    assert_eq!(
        tok.vocab_size(),
        words.len() + 1 + tk::REQUIRED_SPECIALS.len(),
        "vocab_size"
    );
    assert_eq!(
        tok.token_to_id("<quad>"),
        Some(words.len() as u32),
        "extra special id"
    );
    let s = tok.special();
    let base = words.len() as u32 + 1;
    assert_eq!(
        [
            s.endoftext,
            s.im_start,
            s.im_end,
            s.img_start,
            s.img_end,
            s.img_context
        ],
        [base, base + 1, base + 2, base + 3, base + 4, base + 5],
        "required special ids"
    );
    let text = "a red cube on a blue sphere .";
    let ids = tok.encode(text).expect("encode");
    assert_eq!(ids, [0, 1, 2, 3, 0, 4, 5, 10], "word ids");
    assert_eq!(tok.decode(&ids, false).expect("decode"), text, "roundtrip");

    let ids = tok
        .encode(&tk::generation_prompt("a red cube"))
        .expect("encode template");
    assert_eq!(ids[0], s.im_start, "template starts with <|im_start|>");
    assert_eq!(ids.last(), Some(&s.img_start), "template ends with <img>");
    assert_eq!(
        tok.encode("a zebra").expect("encode unknown"),
        [0, s.endoftext],
        "unknown word -> <|endoftext|>"
    );
    assert!(
        tk::build_word_level(&["a", "a"], &[]).is_err(),
        "duplicate word must fail"
    );
    match Tokenizer::from_file("/nonexistent/tokenizer.json") {
        Err(e) => assert!(
            e.to_string().contains("/nonexistent/tokenizer.json"),
            "error names file: {e}"
        ),
        Ok(_) => panic!("loading a missing file must fail"),
    }
}
