import test from 'ava';
import sharp from 'sharp';
import { bitmapLabel, composeGrid, gridCellRect, GRID_LABEL_HEIGHT, systemHasFont } from '../../lib/render/grid';
import { testPattern } from './helpers';

// Chosen at load time: without a system font the svg path cannot run, and the summary says so.
const HAS_FONT = systemHasFont();
for (const font of ['bitmap', 'svg'] as const) {
  const runs = font === 'bitmap' || HAS_FONT;
  (runs ? test : test.skip)(`grid layout with ${font} labels${runs ? '' : ' [skipped: no system font for the svg labels]'}`, async (t) => {
    const size = 16;
    const columns = [0, 1, 2].map((seed) => ({ label: ['INPUT', 'K=8', 'EOS K=5'][seed]!, pixels: testPattern(size, size, seed) }));
    const png = await composeGrid(columns, { size, font, minCell: 32 });
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    const meta = await sharp(png).metadata();
    t.is(meta.format, 'png');
    const cell = gridCellRect(2, size, 32);
    t.is(info.width, cell.left + cell.side + 4);
    t.is(info.height, GRID_LABEL_HEIGHT + 32 + 4);
    for (const [i, col] of columns.entries()) {
      const r = gridCellRect(i, size, 32);
      // Nearest-neighbour ×2: the top-left source pixel covers a 2×2 block.
      const at = (r.top * info.width + r.left) * info.channels;
      t.deepEqual([data[at], data[at + 1], data[at + 2]], [col.pixels[0], col.pixels[1], col.pixels[2]]);
      // The label strip holds dark label pixels.
      let dark = 0;
      for (let y = 0; y < GRID_LABEL_HEIGHT; y++) for (let x = r.left; x < r.left + r.side; x++) if (data[(y * info.width + x) * info.channels]! < 128) dark++;
      t.true(dark > 10, `label of column ${i} drawn (${dark} dark pixels)`);
    }
  });
}

test('bitmap labels draw every supported glyph', (t) => {
  const rgba = bitmapLabel('0123456789 ACDEIKLNOPSTU=:.-', 400, 20);
  let on = 0;
  for (let i = 3; i < rgba.length; i += 4) if (rgba[i] === 255) on++;
  t.true(on > 200);
});
