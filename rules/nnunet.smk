# nnU-Net: one raw dataset per label source (training cases only), plan and preprocess once, one job
# per fold (GPU; chained rounds where a fold trains longer than cluster.max_job_minutes), an ensemble
# prediction of the test split, test Dice per source.


rule nnunet_dataset:
    """A source's training cases in nnU-Net's raw format (imagesTr, labelsTr, dataset.json)."""
    input:
        unpack(nnunet_dataset_inputs),
    output:
        directory(f"{NNUNET['raw']}/{{dataset}}"),
    log:
        "results/logs/nnunet_dataset/{dataset}.log",
    conda:
        "../envs/samcrowd.yaml"
    threads: 1
    resources:
        mem_mb=scaled(4000),
        runtime=minutes(30),
    params:
        source=lambda wildcards: SOURCE_OF[wildcards.dataset],
        dataset_id=lambda wildcards: NNUNET_IDS[SOURCE_OF[wildcards.dataset]],
        cases=TRAIN,
        organ_values=config["organs"],
        other_labels=config["data"]["other_labels"],
        paths=NNUNET,
    script:
        "../scripts/nnunet_dataset.py"


rule nnunet_test_images:
    """The test split's images, named for nnU-Net's predictor; shared by every source."""
    input:
        images=[CASES.loc[c, "image"] for c in TEST],
    output:
        directory("results/nnunet/imagesTs"),
    log:
        "results/logs/nnunet_test_images.log",
    conda:
        "../envs/samcrowd.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000),
        runtime=minutes(10),
    params:
        cases=TEST,
    script:
        "../scripts/nnunet_test_images.py"


rule nnunet_preprocess:
    """Plan and preprocess a dataset once; write the study's fold split (splits_final.json)."""
    input:
        f"{NNUNET['raw']}/{{dataset}}",
    output:
        f"{NNUNET['preprocessed']}/{{dataset}}/splits_final.json",
    log:
        "results/logs/nnunet_preprocess/{dataset}.log",
    conda:
        "../envs/samcrowd.yaml"
    threads: config["nnunet"]["threads"]
    resources:
        mem_mb=scaled(16000),
        runtime=minutes(240),
    params:
        dataset_id=lambda wildcards: NNUNET_IDS[SOURCE_OF[wildcards.dataset]],
        configuration=config["nnunet"]["configuration"],
        folds=config["nnunet"]["folds"],
        seed=config["nnunet"]["seed"],
        paths=NNUNET,
    script:
        "../scripts/nnunet_preprocess.py"


rule nnunet_train_round:
    """A round before the last of a fold whose training is longer than cluster.max_job_minutes: continues
    from the previous round's checkpoint, trains to its share of the epochs, writes its own checkpoint."""
    input:
        unpack(lambda wildcards: nnunet_round_inputs(wildcards, int(wildcards.round))),
    output:
        temp(str(nnunet_lib.round_checkpoint(NNUNET_FOLD, "{round}"))),
    log:
        "results/logs/nnunet_train/{dataset}/fold_{fold}.round_{round}.log",
    benchmark:
        "results/benchmarks/nnunet_train/{dataset}/fold_{fold}.round_{round}.tsv"
    conda:
        "../envs/samcrowd.yaml"
    threads: config["nnunet"]["threads"]
    resources:
        gpu=NNUNET_GPU,
        mem_mb=scaled(config["nnunet"]["train_resources"]["mem_mb"]),
        runtime=minutes(NNUNET_ROUND_MINUTES),
    params:
        dataset_id=lambda wildcards: NNUNET_IDS[SOURCE_OF[wildcards.dataset]],
        source=lambda wildcards: SOURCE_OF[wildcards.dataset],
        configuration=config["nnunet"]["configuration"],
        trainer=config["nnunet"]["trainer"],
        device=config["nnunet"]["device"],
        deterministic=config["nnunet"]["deterministic"],
        seed=config["nnunet"]["seed"],
        paths=NNUNET,
        round_number=lambda wildcards: int(wildcards.round),
        rounds=NNUNET_ROUNDS,
    script:
        "../scripts/nnunet_train.py"


rule nnunet_train:
    """Train one fold (GPU job), or its last round where it trains in rounds: continues from the previous
    round's checkpoint, or from checkpoint_latest.pth that a stopped attempt of the same training left."""
    input:
        unpack(lambda wildcards: nnunet_round_inputs(wildcards, NNUNET_ROUNDS)),
    output:
        f"{NNUNET_FOLD}/checkpoint_final.pth",
    log:
        "results/logs/nnunet_train/{dataset}/fold_{fold}.log",
    benchmark:
        "results/benchmarks/nnunet_train/{dataset}/fold_{fold}.tsv"
    conda:
        "../envs/samcrowd.yaml"
    threads: config["nnunet"]["threads"]
    resources:
        gpu=NNUNET_GPU,
        mem_mb=scaled(config["nnunet"]["train_resources"]["mem_mb"]),
        runtime=minutes(NNUNET_ROUND_MINUTES),
    params:
        dataset_id=lambda wildcards: NNUNET_IDS[SOURCE_OF[wildcards.dataset]],
        source=lambda wildcards: SOURCE_OF[wildcards.dataset],
        configuration=config["nnunet"]["configuration"],
        trainer=config["nnunet"]["trainer"],
        device=config["nnunet"]["device"],
        deterministic=config["nnunet"]["deterministic"],
        seed=config["nnunet"]["seed"],
        paths=NNUNET,
        round_number=NNUNET_ROUNDS,
        rounds=NNUNET_ROUNDS,
    script:
        "../scripts/nnunet_train.py"


rule nnunet_predict:
    """Predict the test split with the ensemble of a source's folds, on each test image's own grid."""
    input:
        models=nnunet_fold_checkpoints,
        images="results/nnunet/imagesTs",
        originals=[CASES.loc[c, "image"] for c in TEST],
    output:
        directory("results/nnunet/predictions/{source}"),
    log:
        "results/logs/nnunet_predict/{source}.log",
    conda:
        "../envs/samcrowd.yaml"
    threads: config["nnunet"]["threads"]
    resources:
        gpu=NNUNET_GPU,
        mem_mb=scaled(16000),
        runtime=minutes(120),
    params:
        cases=TEST,
        dataset_id=lambda wildcards: NNUNET_IDS[wildcards.source],
        configuration=config["nnunet"]["configuration"],
        trainer=config["nnunet"]["trainer"],
        folds=config["nnunet"]["folds"],
        device=config["nnunet"]["device"],
        paths=NNUNET,
    script:
        "../scripts/nnunet_predict.py"


rule nnunet_evaluate:
    """Test-set volume Dice of every source's model against the expert labels."""
    input:
        predictions=expand("results/nnunet/predictions/{source}", source=NNUNET_SOURCES),
        labels=[CASES.loc[c, "label"] for c in TEST],
    output:
        report(
            "results/tables/test_dice.tsv",
            caption="../report/test_dice.rst",
            category="3. nnU-Net",
        ),
    log:
        "results/logs/nnunet_evaluate.log",
    conda:
        "../envs/samcrowd.yaml"
    threads: 1
    resources:
        mem_mb=scaled(4000),
        runtime=minutes(30),
    params:
        sources=NNUNET_SOURCES,
        cases=TEST,
        organ_values=config["organs"],
        other_labels=config["data"]["other_labels"],
    script:
        "../scripts/nnunet_evaluate.py"
