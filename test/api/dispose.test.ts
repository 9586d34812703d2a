// Shared models are reference counted: a Tokenizer and a Reconstructor over one DoveModel each hold
// it, and the module is freed by the last release, never under the other user.
import test from 'ava';
import { DoveModel } from '../../lib/model/model-file';
import { Reconstructor } from '../../lib/model/reconstructor';
import { Tokenizer } from '../../lib/model/tokenizer';
import { fixtureExists, pngOf, TINY_DOVE } from './helpers';

const ready = fixtureExists(TINY_DOVE);
const maybe = ready ? test.serial : test.serial.skip;
const title = (name: string): string => (ready ? name : `${name} (skipped: no test/fixtures/generated/tiny-dove.pt; run scripts/setup)`);

maybe(title('Tokenizer.dispose() leaves the model to a Reconstructor that shares it; the last dispose frees it'), async (t) => {
  const tokenizer = await Tokenizer.load(TINY_DOVE);
  const reconstructor = new Reconstructor(tokenizer.model);
  const tokens = await tokenizer.tokenize(await pngOf(32, 32), { mode: 'fixed', maxTokens: 2 });
  tokenizer.dispose();
  tokenizer.dispose(); // idempotent: a second call must not release the Reconstructor's reference
  t.false(reconstructor.model.module.disposed, 'the Reconstructor still holds the model');
  const image = await reconstructor.reconstruct(tokens);
  t.is(image.width, tokenizer.model.imageSize);
  reconstructor[Symbol.dispose]();
  t.true(reconstructor.model.module.disposed, 'the last holder freed the module');
  await t.throwsAsync(reconstructor.reconstruct(tokens), { code: 'DISPOSED' });
});

maybe(title('a DoveModel the caller loaded stays alive until the caller and every holder released it'), async (t) => {
  const model = await DoveModel.load(TINY_DOVE);
  const reconstructor = new Reconstructor(model);
  reconstructor.dispose();
  t.false(model.module.disposed, 'the caller still holds it');
  const tokenizer = new Tokenizer(model);
  model[Symbol.dispose]();
  model.dispose();
  t.false(model.module.disposed, 'the Tokenizer still holds it');
  tokenizer.dispose();
  t.true(model.module.disposed);
});
