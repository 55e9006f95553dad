//! `cargo bench -p kefu-intent`: single and batch classification with the bundled model, a
//! shop's trained model's n-gram half, and model load time. Targets (issue #3): ≥ 50,000 short
//! messages/s on one core, load < 1 s.
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

const MESSAGES: &[&str] = &[
    "where is my order",
    "我的快递到哪里了",
    "I want to return this jacket, it's too small",
    "优惠券和满减能一起用吗",
    "转人工",
    "can I pay with Alipay",
    "订单202611110023什么时候发货",
    "what's the weather tomorrow",
];

fn bench(c: &mut Criterion) {
    let model = kefu_intent::bundled().expect("bundled model");
    let mut g = c.benchmark_group("classify");
    g.throughput(Throughput::Elements(1));
    g.bench_function("single", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % MESSAGES.len();
            black_box(model.predict(black_box(MESSAGES[i])))
        })
    });
    g.bench_function("single_with_entities", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % MESSAGES.len();
            let t = black_box(MESSAGES[i]);
            black_box((model.predict(t), kefu_intent::entities::extract(t)))
        })
    });
    let batch: Vec<&str> = MESSAGES.iter().cycle().take(256).copied().collect();
    g.throughput(Throughput::Elements(batch.len() as u64));
    g.bench_function("batch_256", |b| {
        b.iter(|| batch.iter().map(|t| model.predict(t)).collect::<Vec<_>>())
    });
    // A shop's trained model (Kefu's defaults, 21 intents, no embedding head): its n-gram
    // half, which every message of such a shop goes through.
    let set = kefu_intent::shop::training_set(&kefu_intent::shop::Recipe::default(), &[]);
    let shop = kefu_intent::shop::train(&kefu_intent::shop::Input {
        examples: &set,
        embeddings: None,
        embedding_model: None,
        recipe: kefu_intent::shop::Recipe::default(),
        embedding_note: String::new(),
    })
    .expect("shop model")
    .model;
    g.throughput(Throughput::Elements(1));
    g.bench_function("shop_model_ngram", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % MESSAGES.len();
            let p = shop.ngram_probabilities(black_box(MESSAGES[i]));
            black_box(shop.decide_ngram(&p))
        })
    });
    g.finish();
    c.bench_function("load_bundled_model", |b| {
        b.iter_batched(
            || (),
            |_| kefu_intent::bundled().expect("model"),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
