"""What the editor shows on hover and completes: a description of every property of the
manifest schema (what it does, its range, what leaving it out means), readable titles, and
the snippets a new document, a ``spec`` and an empty ``config`` start from.

Kept apart from the models: the wire models mirror the API and stay free of prose; a test
walks the schema and fails on any property this table does not describe.
"""

from __future__ import annotations

from typing import Any

_COL = "a collection id (col_…) or {name: …}, resolved per namespace at plan time"
_RET = "a retriever id (ret_…) or {name: …}, resolved per namespace at plan time"
_MAPPINGS = "How the retriever's inputs are built from each document being enriched."
_FIELDS = "Fields copied from the matched node onto each enriched document."

DESCRIPTIONS: dict[str, dict[str, str]] = {
    "TaxonomyManifest": {
        "apiVersion": "The manifest format: always taxsync/v1.",
        "kind": "What the document declares: always Taxonomy.",
        "metadata": "The taxonomy's name and the namespace (or namespaces) it lives in.",
        "spec": "What the taxonomy is: its config, description, metadata, and the "
        "collections that apply it.",
    },
    "ManifestMetadata": {
        "name": "The taxonomy's name (taxonomy_name), unique in its namespace; 1 to 256 "
        "characters, not . or ..",
        "namespace": "The namespace (name or ns_ id) the taxonomy lives in; 1 to 64 ASCII "
        "characters, no /. Use namespaces instead to declare it in several.",
        "previousNames": "Earlier names of this taxonomy: a live taxonomy under one of them "
        "is renamed in place instead of replaced. Default: none.",
        "namespaces": "Declare the taxonomy in each of these namespaces (instead of "
        "namespace); spec.overrides may adjust the spec per namespace.",
    },
    "ManifestSpec": {
        "description": "The taxonomy's description. Left out: no description (a live one is "
        "cleared).",
        "metadata": "Your own metadata on the taxonomy, any JSON mapping. managed_by is "
        "reserved: taxsync sets it on what it manages.",
        "config": "Mixpeek's taxonomy configuration as the API takes it: flat or "
        "hierarchical, chosen by taxonomy_type.",
        "wait": "Whether apply waits until the taxonomy's inference is ready. Default: false.",
        "backfill": "onChange: after a config change or an attach, re-enrich the documents "
        "of the collections it touches. never (the default): only new documents are "
        "enriched.",
        "appliedTo": "The collections of the namespace that apply this taxonomy, one entry "
        "each. Present (even []): taxsync owns the taxonomy's entries in every collection. "
        "Left out: attachments are left alone.",
        "overrides": "Per namespace of metadata.namespaces, a partial spec merged over this "
        "one (JSON Merge Patch: mappings merge, lists and scalars replace, null removes).",
    },
    "AppliedTo": {
        "collection": "The collection that applies the taxonomy: its id (col_…) or its name.",
        "execution_mode": "materialize (the only mode): enrichments are written into the "
        "documents during ingestion. Left out: the API's default.",
        "target_collection_id": "Write the results into this collection instead of "
        f"updating the source collection in place: {_COL}.",
        "scroll_filters": "Extra filters (AND / OR / NOT) on the documents a backfill enriches.",
        "execution_phase": "When it runs among post-processing steps: 1 taxonomy, 2 cluster, "
        "3 alert; lower runs earlier. 1 to 3, default 1.",
        "priority": "Order within its phase, higher runs first. 0 to 1000, default 0.",
        "hierarchical_enrichment_style": "Hierarchical taxonomies only: full_chain writes "
        "tier1_id, tier2_id, …; best_match writes category_id, category_name and path; "
        "combined (the default) writes both.",
    },
    "FlatConfig": {
        "taxonomy_type": "flat: every document gets its nearest nodes from one source "
        "collection. Required in manifests.",
        "retriever_id": f"The retriever run against the source collection (required): {_RET}.",
        "input_mappings": _MAPPINGS + " Required.",
        "source_collection": "The collection whose documents are the taxonomy's nodes (required).",
        "top_k": "How many nodes each document may be assigned; above 1, append-mode fields "
        "collect from every match. 1 to 50, default 1.",
        "step_analytics": "Optional analytics of how labels change over time along "
        "sequences of documents.",
    },
    "HierarchicalConfig": {
        "taxonomy_type": "hierarchical: nodes form a tree (explicit nodes, inference, or a "
        "path field). Required in manifests.",
        "retriever_id": f"The default retriever of the nodes (a node may set its own): {_RET}.",
        "input_mappings": _MAPPINGS + " The nodes' default.",
        "inference_strategy": "How the tree is inferred from inference_collections: schema "
        "(schema overlap), cluster (cluster overlap) or llm (a language model). Left out: "
        "no inference.",
        "inference_collections": f"The collections inference analyses, each {_COL}.",
        "llm_provider": "The model provider of the llm strategy: openai_chat_v1 (the only "
        "one, also the server's default).",
        "llm_model": "The model of the llm strategy, e.g. gpt-4o-mini.",
        "llm_prompt_template": "The llm strategy's prompt; may use {collection_id} and "
        "{collection_name}.",
        "llm_sample_size": "Documents sampled per collection for the llm strategy; 0 (the "
        "default) disables sampling.",
        "cluster_ids": "The clusters the cluster strategy reads.",
        "cluster_overlap_threshold": "The minimum overlap for a parent-child link under the "
        "cluster strategy. Default 0.7.",
        "hierarchical_nodes": "The tree's nodes, each one collection: the whole tree, or "
        "additions and overrides to an inferred one. Not with path_field.",
        "step_analytics": "Optional analytics of how labels change over time along "
        "sequences of documents.",
        "path_field": "Build the tree from a path each document already carries (a "
        "delimited string or a list of ancestors; dot paths allowed). Not with "
        "hierarchical_nodes or inference_strategy.",
        "path_separator": "The separator of a string path_field; at least 1 character, default /.",
    },
    "HierarchicalNode": {
        "collection_id": f"The node's collection (required), one node per collection: {_COL}.",
        "parent_collection_id": "The parent node's collection, another node of this "
        f"taxonomy; left out for a root: {_COL}.",
        "label": "The node's display name.",
        "summary": "A short text about the node.",
        "keywords": "Keywords that describe the node.",
        "retriever_id": f"This node's retriever, instead of the taxonomy's: {_RET}.",
        "enrichment_fields": _FIELDS + " Children inherit their parents' fields.",
        "input_mappings": _MAPPINGS + " This node's, instead of the taxonomy's.",
    },
    "SourceCollection": {
        "collection_id": f"The collection holding the nodes (required): {_COL}.",
        "enrichment_fields": _FIELDS + " Left out: the node's whole payload is copied; "
        "[] copies nothing.",
    },
    "EnrichmentField": {
        "field_path": "Dot path of the field on the node document (required).",
        "target_field": "The field's name on the enriched document. Default: field_path.",
        "merge_mode": "replace overwrites the field; append adds to a list field.",
    },
    "InputMapping": {
        "input_key": "The retriever input this mapping fills (required).",
        "source_type": "Where the value comes from: payload (a document field), vector (a "
        "feature vector), blob, or literal (override).",
        "path": "Dot path of the value in the document, for payload and vector.",
        "override": "The constant value of a literal input, any JSON.",
    },
    "StepAnalyticsConfig": {
        "timestamp_field": "The document field that orders a sequence in time (required).",
        "sequence_id_field": "The document field that groups documents into sequences (required).",
        "step_key_source": "What names a step: assignment_label, assignment_node_id, or "
        "field_path (then set step_key_field_path).",
        "step_key_field_path": "The field that names a step when step_key_source is field_path.",
        "covariates": "Fields to break the analytics down by; at most 20.",
        "max_sequence_duration_days": "Sequences longer than this are cut. 1 to 365 days.",
    },
    "CovariateConfig": {
        "field_path": "The document field of the covariate (required).",
        "covariate_type": "categorical, numeric, embedding or cluster_id (required).",
        "name": "The covariate's name in the results; 1 to 100 characters (required).",
        "binning_strategy": "How numeric values are binned: quartiles (default), deciles or "
        "custom.",
        "clustering_method": "How embeddings are clustered: kmeans (default) or hdbscan.",
        "n_clusters": "Clusters for an embedding covariate. 2 to 100, default 10.",
    },
    "LogicalOperatorInput": {
        "AND": "Conditions that must all hold.",
        "OR": "Conditions of which at least one holds.",
        "NOT": "Conditions that must not hold.",
        "case_sensitive": "Whether string comparisons are case-sensitive. Default false.",
    },
    "NameReference": {
        "name": "The collection's or retriever's name in the namespace.",
    },
}

TITLES = {
    "TaxonomyManifest": "taxsync Taxonomy manifest",
    "ManifestMetadata": "Taxonomy metadata",
    "ManifestSpec": "Taxonomy spec",
    "AppliedTo": "appliedTo entry",
    "FlatConfig": "Flat taxonomy config",
    "HierarchicalConfig": "Hierarchical taxonomy config",
    "HierarchicalNode": "Hierarchical node",
    "SourceCollection": "Source collection",
    "EnrichmentField": "Enrichment field",
    "InputMapping": "Input mapping",
    "StepAnalyticsConfig": "Step analytics",
    "CovariateConfig": "Covariate",
    "LogicalOperatorInput": "Filter (AND / OR / NOT)",
    "NameReference": "Reference by name",
}

# --- snippets (the YAML language server's defaultSnippets) -----------------------------
# ``${n:text}`` is a tab stop that inserts ``text``: every inserted text is a valid value.

_FLAT_CONFIG = {
    "taxonomy_type": "flat",
    "retriever_id": "${10:ret_clip_v1}",
    "input_mappings": [
        {"input_key": "${11:image_vector}", "source_type": "vector", "path": "${12:features.clip}"}
    ],
    "source_collection": {"collection_id": "${13:col_categories}"},
}
_HIERARCHICAL_CONFIG = {
    "taxonomy_type": "hierarchical",
    "hierarchical_nodes": [
        {"collection_id": "${10:col_departments}", "label": "${11:Departments}"},
        {
            "collection_id": "${12:col_categories}",
            "parent_collection_id": "${10:col_departments}",
            "label": "${13:Categories}",
        },
    ],
}
CONFIG_SNIPPETS = [
    {"label": "flat", "description": "Nearest nodes from one collection", "body": _FLAT_CONFIG},
    {
        "label": "hierarchical",
        "description": "A tree of node collections",
        "body": _HIERARCHICAL_CONFIG,
    },
]
_SPEC = {"description": "${3:What this taxonomy labels}", "backfill": "never"}
SPEC_SNIPPETS = [
    {
        "label": f"{c['label']} taxonomy",
        "description": c["description"],
        "body": {**_SPEC, "config": c["body"]},
    }
    for c in CONFIG_SNIPPETS
]
DOCUMENT_SNIPPETS = [
    {
        "label": f"taxsync {s['label']}",
        "description": s["description"],
        "body": {
            "apiVersion": "taxsync/v1",
            "kind": "Taxonomy",
            "metadata": {"name": "${1:product-categories}", "namespace": "${2:production}"},
            "spec": s["body"],
        },
    }
    for s in SPEC_SNIPPETS
]


def described(definition: str, properties: dict[str, Any]) -> None:
    """Give each property of ``definition`` its description and a title that reads as the
    key does; the alternatives inside it lose theirs, so a hover shows one of each."""
    for key, prop in properties.items():
        for choice in prop.get("anyOf", []) + prop.get("oneOf", []):
            choice.pop("title", None)
        prop["title"] = key
        text = DESCRIPTIONS.get(definition, {}).get(key)
        if text is not None:  # a test fails on any property left without one
            prop["description"] = text
