"""tools/published_costs.py: which command is a published configuration (the figures are checked against the
counts in tests/test_profile_model.py)."""
from tools.profile_model import parse_profile_args
from tools.published_costs import PUBLISHED_CLIP_GMACS, PYTORCHVIDEO_ZOO_GMACS, published_row

BASE = ['move4mnist', 'RGB', '--pretrain', 'scratch', '--arch', 'r3d_18']


def test_published_row_is_the_clip_of_the_published_size_only():
    assert published_row(parse_profile_args(BASE + ['--img_size', '112', '--num_segments', '16'])) is \
        PUBLISHED_CLIP_GMACS[('r3d_18', 16, 112)]
    for flags in (['--img_size', '224', '--num_segments', '16'], ['--img_size', '112', '--num_segments', '8'],
                  ['--img_size', '112', '--num_segments', '16', '--cluster', 'slope', '--frames', '32']):
        assert published_row(parse_profile_args(BASE + flags)) is None, flags


def test_every_entry_names_its_source():
    for key, row in list(PUBLISHED_CLIP_GMACS.items()) + list(PYTORCHVIDEO_ZOO_GMACS.items()):
        assert row['gmacs'] > 0 and row['source'], key


def test_slowfasts_row_follows_its_alpha_and_the_builders_default():
    base = ['kinetics400', 'RGB', '--pretrain', 'scratch', '--arch', 'slowfast_r50', '--img_size', '256',
            '--num_segments', '32']
    assert published_row(parse_profile_args(base))['gmacs'] == 65.71  # no --slowfast_alpha: the builder's 4
    assert published_row(parse_profile_args(base + ['--slowfast_alpha', '8']))['gmacs'] == 36.69
    assert published_row(parse_profile_args(base[:-1] + ['16'])) is None
