//! `kefu.privacy.v1.CustomerDataService` on intent-classifier (docs/privacy.md): a shop's
//! labelled examples may be customer messages an agent labelled. The examples "about" a
//! customer are those with the same example key (`store::example_key`: the same words, digits,
//! punctuation and case aside) as one of the customer's message texts, which session-router's
//! export puts in the subject. Erasure deletes them (a shop's own uploaded example with the
//! very same words goes too: erring on the side of the customer). Models trained earlier are
//! derived from examples and stay until the shop trains again (docs/privacy.md).
use kefu_proto::privacy::v1::Subject;
use kefu_runtime::{
    grpc::ApiError,
    json_row,
    privacy::{CustomerData, Erased, Export},
};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};

use crate::{entity::example, store::example_key};

use kefu_runtime::db::IN_LIST_CHUNK as CHUNK;

/// intent-classifier's customer data.
pub struct CustomerDataStore {
    pub db: DatabaseConnection,
}

fn keys(subject: &Subject) -> Vec<String> {
    let mut k: Vec<String> = subject
        .texts
        .iter()
        .filter(|t| !t.trim().is_empty())
        .map(|t| example_key(t))
        .collect();
    k.sort();
    k.dedup();
    k
}

#[tonic::async_trait]
impl CustomerData for CustomerDataStore {
    fn service(&self) -> &'static str {
        crate::SERVICE
    }

    async fn export(&self, shop_id: &str, subject: &Subject) -> Result<Export, ApiError> {
        let mut rows = Vec::new();
        for chunk in keys(subject).chunks(CHUNK) {
            rows.extend(
                example::Entity::find()
                    .filter(example::Column::ShopId.eq(shop_id))
                    .filter(example::Column::Key.is_in(chunk.iter().cloned()))
                    .order_by_asc(example::Column::Id)
                    .all(&self.db)
                    .await?,
            );
        }
        let mut e = Export::default();
        e.table(
            "intent_examples",
            rows.iter()
                .map(|r| json_row!(r; id, text, label, source, labeled_by, updated_at))
                .collect(),
        );
        Ok(e)
    }

    async fn erase(&self, shop_id: &str, subject: &Subject) -> Result<Erased, ApiError> {
        let txn = kefu_runtime::db::begin_write(&self.db).await?;
        let mut erased = Erased::default();
        erased.add("intent_examples", 0);
        for chunk in keys(subject).chunks(CHUNK) {
            let n = example::Entity::delete_many()
                .filter(example::Column::ShopId.eq(shop_id))
                .filter(example::Column::Key.is_in(chunk.iter().cloned()))
                .exec(&txn)
                .await?
                .rows_affected;
            erased.add("intent_examples", n);
        }
        txn.commit().await?;
        Ok(erased)
    }
}
