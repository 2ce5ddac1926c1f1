"""Patches on small synthetic darknet trees whose Makefile heads are the real forks' flag/ARCH lines."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from darknet_patch.fork import Fork, detect_fork, source_revision
from darknet_patch.makefile import (
    BuildFlags,
    drop_dead_arches,
    gencode,
    patch_makefile,
    read_switch,
    set_arch,
    set_switch,
)
from darknet_patch.source import apply_patches, patch_cudnn8, patch_no_display
from orchestrator.core.errors import BuildError

DATA = Path(__file__).resolve().parent / "data"
PJ_HEAD = (DATA / "pjreddie.Makefile.head").read_text()
AB_HEAD = (DATA / "alexeyab.Makefile.head").read_text()

# Same shape as pjreddie's examples/detector.c test_detector (display calls inside #ifdef OPENCV).
DETECTOR_C = """\
void train_detector(char *datacfg, char *cfgfile, char *weightfile, int *gpus, int ngpus, int clear)
{
    int i = 0;
}

void test_detector(char *datacfg, char *cfgfile, char *weightfile, char *filename, float thresh, float hier_thresh, char *outfile, int fullscreen)
{
    while(1){
        if(outfile){
            save_image(im, outfile);
        }
        else{
            save_image(im, "predictions");
#ifdef OPENCV
            make_window("predictions", 512, 512, 0);
            show_image(im, "predictions", 0);
#endif
        }
        if (filename) break;
    }
}

void demo_detector(void)
{
#ifdef OPENCV
    show_image(im, "demo", 1);
#endif
}
"""

# Same shape as pjreddie's src/convolutional_layer.c cudnn_convolutional_setup.
CONV_C = """\
void cudnn_convolutional_setup(layer *l)
{
    cudnnGetConvolutionForwardAlgorithm(cudnn_handle(),
            l->srcTensorDesc,
            l->weightDesc,
            l->convDesc,
            l->dstTensorDesc,
            CUDNN_CONVOLUTION_FWD_SPECIFY_WORKSPACE_LIMIT,
            2000000000,
            &l->fw_algo);
    cudnnGetConvolutionBackwardDataAlgorithm(cudnn_handle(),
            l->weightDesc,
            l->ddstTensorDesc,
            l->convDesc,
            l->dsrcTensorDesc,
            CUDNN_CONVOLUTION_BWD_DATA_SPECIFY_WORKSPACE_LIMIT,
            2000000000,
            &l->bd_algo);
    cudnnGetConvolutionBackwardFilterAlgorithm(cudnn_handle(),
            l->srcTensorDesc,
            l->ddstTensorDesc,
            l->convDesc,
            l->dweightDesc,
            CUDNN_CONVOLUTION_BWD_FILTER_SPECIFY_WORKSPACE_LIMIT,
            2000000000,
            &l->bf_algo);
}
"""


def make_tree(root: Path, fork: Fork) -> Path:
    """A minimal darknet-shaped tree of ``fork`` at ``root``."""
    (root / "src").mkdir(parents=True)
    if fork is Fork.PJREDDIE:
        (root / "Makefile").write_text(PJ_HEAD + "\nEXECOBJA=detector.o darknet.o\n")
        (root / "src" / "cuda.c").write_text("int gpu_index = 0;\n")
        (root / "examples").mkdir()
        (root / "examples" / "detector.c").write_text(DETECTOR_C)
        (root / "src" / "convolutional_layer.c").write_text(CONV_C)
    else:
        (root / "Makefile").write_text(AB_HEAD)
        (root / "src" / "dark_cuda.c").write_text("int gpu_index = 0;\n")
        (root / "src" / "yolo_v2_class.cpp").write_text("// lib\n")
    return root


# --- fork detection -----------------------------------------------------------------------------------------


def test_detects_both_forks_from_content(tmp_path: Path) -> None:
    assert detect_fork(make_tree(tmp_path / "any name", Fork.PJREDDIE)) is Fork.PJREDDIE
    assert detect_fork(make_tree(tmp_path / "darknet-pjreddie", Fork.ALEXEYAB)) is Fork.ALEXEYAB


def test_non_darknet_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="no Makefile"):
        detect_fork(tmp_path)
    (tmp_path / "Makefile").write_text("all:\n\techo hi\n")
    with pytest.raises(BuildError, match="does not look like darknet"):
        detect_fork(tmp_path)


def test_source_revision_is_a_content_hash_without_git(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "t", Fork.ALEXEYAB)
    first = source_revision(tree)
    assert first.startswith("content-") and source_revision(tree) == first
    (tree / "src" / "dark_cuda.c").write_text("int gpu_index = 1;\n")
    assert source_revision(tree) != first


def test_source_revision_of_a_git_tree_sees_uncommitted_edits(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "t", Fork.PJREDDIE)
    git = ["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert source_revision(tree) == commit
    detector = tree / "examples" / "detector.c"
    detector.write_text(detector.read_text() + "/* show_image commented out by hand */\n")
    edited = source_revision(tree)  # the seed workflow's hand edit: not the commit's binary
    assert edited.startswith("content-")
    detector.write_text(detector.read_text() + "/* and again */\n")
    assert source_revision(tree) not in (edited, commit)


# --- Makefile -----------------------------------------------------------------------------------------------


def test_seed_flags_on_pjreddie_with_a_t4(tmp_path: Path) -> None:
    flags = BuildFlags(gpu=True, cudnn=True, compute_capability="7.5", cuda_version="12.2")
    out = patch_makefile(PJ_HEAD, flags, Fork.PJREDDIE)
    assert read_switch(out, "GPU") == "1" and read_switch(out, "CUDNN") == "1"
    assert "ARCH= -gencode arch=compute_75,code=[sm_75,compute_75]\n" in out
    assert "compute_30" not in out.split("#")[0]  # the live ARCH line no longer lists compute_30
    assert patch_makefile(out, flags, Fork.PJREDDIE) == out  # idempotent


def test_all_switches_on_alexeyab() -> None:
    flags = BuildFlags(
        gpu=True, cudnn=True, cudnn_half=True, opencv=True, avx=True, openmp=True, libso=True, debug=True,
        compute_capability="8.6",
    )
    out = patch_makefile(AB_HEAD, flags, Fork.ALEXEYAB)
    for name in ("GPU", "CUDNN", "CUDNN_HALF", "OPENCV", "AVX", "OPENMP", "LIBSO", "DEBUG"):
        assert read_switch(out, name) == "1", name
    assert read_switch(out, "ZED_CAMERA") == "0"
    assert out.count("ARCH=") == 1 and gencode("8.6") in out
    back = patch_makefile(out, BuildFlags(), Fork.ALEXEYAB)
    assert all(read_switch(back, n) == "0" for n in ("GPU", "CUDNN", "OPENCV", "LIBSO"))


def test_switch_missing_from_the_fork_is_refused_only_when_wanted() -> None:
    with pytest.raises(BuildError, match="CUDNN_HALF.*AlexeyAB"):
        patch_makefile(PJ_HEAD, BuildFlags(cudnn_half=True), Fork.PJREDDIE)
    assert set_switch(PJ_HEAD, "LIBSO", False) == PJ_HEAD


def test_opencv_on_pjreddie_is_refused_with_the_reason() -> None:
    with pytest.raises(BuildError, match="OpenCV 4.*AlexeyAB"):
        patch_makefile(PJ_HEAD, BuildFlags(opencv=True), Fork.PJREDDIE)


def test_dead_arches_are_dropped_for_new_cuda_without_a_known_gpu() -> None:
    out = patch_makefile(PJ_HEAD, BuildFlags(gpu=True, cuda_version="11.8"), Fork.PJREDDIE)
    live = out.split("#")[0]
    assert "compute_30" not in live and "compute_35" in live and "compute_52" in live
    out12 = drop_dead_arches(PJ_HEAD, "12.2")
    assert "compute_35" not in out12.split("#")[0] and "compute_50" in out12
    assert drop_dead_arches(PJ_HEAD, "10.2") == PJ_HEAD


def test_arch_errors_are_clear() -> None:
    with pytest.raises(BuildError, match="compute capability"):
        gencode("sm75")
    with pytest.raises(BuildError, match="ARCH="):
        set_arch("GPU=0\n", "7.5")
    only_old = "ARCH= -gencode arch=compute_30,code=sm_30\n"
    with pytest.raises(BuildError, match="compute capability"):
        drop_dead_arches(only_old, "12.0")


def test_missing_switch_target_pattern_is_refused() -> None:
    with pytest.raises(BuildError, match="pattern"):
        set_switch("CUDNN=0\n", "GPU", True)


# --- source patches -----------------------------------------------------------------------------------------


def test_no_display_comments_only_test_detector_calls() -> None:
    out, changed = patch_no_display(DETECTOR_C)
    assert changed
    assert "// orchestrator no_display: make_window(" in out and "// orchestrator no_display: show_image(im, \"predictions\"" in out
    assert '    show_image(im, "demo", 1);' in out  # demo_detector untouched
    again, changed_again = patch_no_display(out)
    assert again == out and not changed_again


def test_no_display_refuses_an_unexpected_detector() -> None:
    with pytest.raises(BuildError, match="test_detector"):
        patch_no_display("void other(void)\n{\n}\n")
    body = DETECTOR_C.replace('            make_window("predictions", 512, 512, 0);\n', "").replace(
        '            show_image(im, "predictions", 0);\n', ""
    )
    with pytest.raises(BuildError, match="no make_window/show_image"):
        patch_no_display(body)


def test_cudnn8_rewrites_the_three_removed_calls() -> None:
    out, changed = patch_cudnn8(CONV_C)
    assert changed and out.count("orchestrator cudnn8") == 3
    assert "cudnnGetConvolutionForwardAlgorithm_v7(cudnn_handle(), l->srcTensorDesc, l->weightDesc" in out
    assert "l->bf_algo = perf_results.algo;" in out and "cudnnConvolutionBwdDataAlgoPerf_t" in out
    assert "cudnnGetConvolutionForwardAlgorithm(" not in out
    assert patch_cudnn8(out) == (out, False)


def test_cudnn8_refuses_an_unexpected_form() -> None:
    odd = "cudnnGetConvolutionForwardAlgorithm(handle, a, b, c, d, PREFER_FASTEST, 0, &algo);\n"
    with pytest.raises(BuildError, match="AlexeyAB"):
        patch_cudnn8(odd)


def test_apply_patches_on_a_tree_is_idempotent(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "dark net ü", Fork.PJREDDIE)
    flags = BuildFlags(gpu=True, cudnn=True, compute_capability="7.5", cuda_version="12.2")
    first = apply_patches(tree, Fork.PJREDDIE, flags)
    assert [(r.name, r.changed) for r in first] == [("makefile", True), ("no_display", True), ("cudnn8", True)]
    snapshot = {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()}
    second = apply_patches(tree, Fork.PJREDDIE, flags)
    assert [r.changed for r in second] == [False, False, False]
    assert {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()} == snapshot


def test_alexeyab_tree_gets_only_the_makefile_patch(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "ab", Fork.ALEXEYAB)
    results = apply_patches(tree, Fork.ALEXEYAB, BuildFlags(gpu=True, cudnn=True, compute_capability="7.5"))
    assert [r.name for r in results] == ["makefile"]


def test_missing_patch_target_file_is_refused(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "pj", Fork.PJREDDIE)
    (tree / "examples" / "detector.c").unlink()
    with pytest.raises(BuildError, match="examples/detector.c not found"):
        apply_patches(tree, Fork.PJREDDIE, BuildFlags())


def test_real_excerpts_are_unchanged_fixtures() -> None:
    # guard: the test data must stay the real forks' lines (re-generate from the forks, never hand-edit)
    assert PJ_HEAD.startswith("GPU=0\nCUDNN=0\nOPENCV=0\nOPENMP=0\nDEBUG=0\n")
    assert "compute_30,code=sm_30" in PJ_HEAD and "CUDNN_HALF=0" in AB_HEAD
