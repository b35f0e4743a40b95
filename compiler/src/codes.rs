//! Diagnostic codes and their long explanations (`imcc explain CODE`).

use serde::{Serialize, Serializer};

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Compilation cannot continue: the program is not checked.
    Error,
    /// Legal but almost certainly not what was meant (no effect, silently overridden, unused).
    Warning,
}

macro_rules! codes {
    ($($variant:ident = $code:literal, $sev:ident, $title:literal, $explain:literal;)*) => {
        /// A stable diagnostic code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $(#[doc = $title] $variant,)*
        }

        impl Code {
            /// Every code, in order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The code as written: `E0003`, `W0001`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            /// A short title.
            pub fn title(self) -> &'static str {
                match self { $(Code::$variant => $title,)* }
            }

            /// The long explanation, with an example.
            pub fn explanation(self) -> &'static str {
                match self { $(Code::$variant => $explain,)* }
            }

            /// Errors stop compilation; warnings do not.
            pub fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$sev,)* }
            }
        }
    };
}

impl Code {
    /// Looks a code up by its text (case-insensitive).
    pub fn parse(text: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| c.as_str().eq_ignore_ascii_case(text.trim()))
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

codes! {
    UnknownCharacter = "E0001", Error, "unknown character",
"A character that cannot start any token of the language was found.

Tokens are identifiers (`fc1`), numbers (`0.05`, `1.2e-3`), strings (`\"hw/chip.imc\"`),
the punctuation `{ } ( ) [ ] ; : , = -`, and `x` between dimensions (`1152 x 256`).
Comments start with `//`.

    noise { sigma_lsb = 0.05 @ lsb; }   // error: `@` is not a token
";
    UnterminatedString = "E0002", Error, "unterminated string",
"A string literal was opened with `\"` but not closed on the same line.

    import \"hw/cimu16.imc;     // error
    import \"hw/cimu16.imc\";   // ok
";
    SyntaxError = "E0003", Error, "syntax error",
"The parser expected something else at this point. The message lists what would be valid.

Statements inside a block end with `;`:

    train full {
        epochs = 10      // error: expected `;`
        batch = 64;
    }

The parser recovers at the next `;` or `}`, so independent errors later in the file are still
reported.
";
    NestingTooDeep = "E0004", Error, "nesting too deep",
"Brackets, parentheses and braces nest deeper than the limit (64 levels). No real program needs
that much nesting; the limit keeps the compiler's stack bounded on any input.
";
    EmptyFile = "E0005", Error, "nothing to compile",
"The file contains no definition. A `.imc` file holds `import` statements and definitions:
`hardware`, `quant`, `network`, `mapping` and `train` blocks.

    hardware cimu16 { array = 1152 x 256; }
";
    ImportFailed = "E0100", Error, "import cannot be read",
"An imported file is missing, unreadable, a directory, too large or not UTF-8. Import paths are
relative to the importing file.

    import \"hw/cimu16.imc\";   // reads <dir of this file>/hw/cimu16.imc
";
    ImportCycle = "E0101", Error, "import cycle",
"A file imports itself, directly or through other files. Imports form a tree of shared
definitions (a chip description imported by several model files); move the shared part into a
file that both import.
";
    UnknownItemKind = "E0200", Error, "unknown kind of definition",
"A top-level definition starts with its kind: `hardware`, `quant`, `network`, `mapping` or
`train`.

    hardwre cimu16 { ... }   // error: did you mean `hardware`?
";
    DuplicateDefinition = "E0201", Error, "duplicate definition",
"Two definitions of the same kind have the same name (possibly in different files through
imports). Names of one kind must be unique; rename one of them.
";
    UnresolvedName = "E0202", Error, "unresolved name",
"A `train` block refers to a hardware, quant, network or mapping definition that does not
exist, or a name refers to an unknown definition. Check the spelling, or `import` the file that
defines it.

    train t { network = mpl; }   // error: did you mean `mlp`?
";
    WrongKindOfName = "E0203", Error, "name refers to the wrong kind of definition",
"The name exists but is a definition of another kind, e.g. `network = cimu16;` where `cimu16` is
a `hardware` block.
";
    ExtendsCycle = "E0204", Error, "cyclic `extends`",
"Definitions inherit parameters through `extends`; the chain must end. `a extends b` and
`b extends a` inherit from each other forever.
";
    ExtendsWrongKind = "E0205", Error, "`extends` of another kind of definition",
"A definition can only extend a definition of the same kind: a `train` block extends another
`train` block, a `hardware` block another `hardware` block.
";
    UnknownParameter = "E0206", Error, "unknown parameter",
"This block or section has no parameter of that name. `spec/language.md` lists every parameter
of every block with its unit and default; the message suggests the closest one.

    noise { sigma_lbs = 0.05; }   // error: did you mean `sigma_lsb`?
";
    DuplicateParameter = "E0207", Error, "parameter set twice",
"A parameter is set twice in the same block, so one of the values would be silently lost.
Remove one. (A definition that `extends` another may override its base's values; that is not
an error.)
";
    MissingParameter = "E0208", Error, "required parameter missing",
"A required parameter has no value. Most parameters have documented defaults; the few without
(a train block's `network` and `data`, a network's `input`, a dense layer's output size) must be
given.
";
    UnknownSection = "E0209", Error, "unknown section",
"The block has no section of that name. Sections group parameters: `adc { }`, `noise { }`,
`energy { }` and `digital { }` in `hardware`; `layer NAME { }` overrides in `quant` and
`mapping`.
";
    UnknownLayerOp = "E0210", Error, "unknown layer operation",
"A layer declaration `name: op(args);` names an operation that does not exist. The operations are
`dense`, `conv2d`, `maxpool`, `avgpool`, `flatten`, `relu`, `pact`, `batchnorm`, `add` and
`softmax_cross_entropy`.
";
    DuplicateLayer = "E0211", Error, "duplicate layer name",
"Two layers of one network have the same name. Layer names are how `from`, quant and mapping
overrides refer to layers, so they must be unique within a network.
";
    UnknownLayer = "E0212", Error, "unknown layer",
"A `from` clause or a `layer NAME { }` override names a layer that the network does not have
(or that is declared later: `from` may only refer to earlier layers, so a network is acyclic).
";
    MisplacedStatement = "E0213", Error, "statement not allowed here",
"Layer declarations (`name: op(...);`) belong in `network` blocks; parameters (`key = value;`)
and sections belong in the other blocks and in sections.
";
    TypeMismatch = "E0300", Error, "wrong type of value",
"The value has the wrong type for this parameter: for example a name where a number is expected,
or a number where a format like `int4_sawb` is expected. The message states the expected type.
";
    UnitMismatch = "E0301", Error, "wrong unit",
"The value's unit measures the wrong quantity: energy constants take `fJ`, `pJ`, `nJ`, `uJ`,
`mJ` or `J`; bit widths take `bits` (or no unit); noise in LSB takes `lsb` (or no unit).

    adc { bits = 8 pJ; }   // error: `pJ` is an energy, `bits` expects a bit width
";
    UnknownUnit = "E0302", Error, "unknown unit",
"The identifier after a number is not a unit. Units: `fJ pJ nJ uJ mJ J` (energy), `bits` or `b`
(bit widths), `lsb` (ADC least significant bits), `KB MB` (memory sizes).
";
    ValueOutOfRange = "E0303", Error, "value out of range",
"The value is outside the range the parameter admits, for example `adc { bits = 0; }` (ADC bits
are 1..16), a negative noise sigma, or an array with zero rows. The message gives the range.
";
    ExpectedInteger = "E0304", Error, "integer expected",
"The parameter counts something (rows, bits, epochs, channels) and takes a whole number.
";
    UnknownVariant = "E0305", Error, "unknown option",
"The parameter takes one of a fixed set of options (for example `input = bit_serial` or
`dac(...)`); the message lists them and suggests the closest.
";
    UnknownArgument = "E0306", Error, "unknown argument",
"A constructor such as `int4_sawb(c1 = 12.035, c2 = 12.03)` or `sgd(lr = 0.1)` was given an
argument it does not take, or the same argument twice.
";
    TooManyArguments = "E0307", Error, "too many positional arguments",
"A constructor or layer was given more positional arguments than it takes. Name arguments to be
explicit: `conv2d(out = 16, kernel = 3)`.
";
    MissingUnit = "E0308", Error, "missing unit",
"Energy constants must carry a unit, so that `1.2` cannot be read as 1.2 J where 1.2 pJ was meant.

    energy { column_eval = 1.2; }    // error
    energy { column_eval = 1.2 pJ; } // ok
";
    DenseInputMismatch = "E0400", Error, "dense input size mismatch",
"A dense layer declares its input size (`dense(in = 784, out = 256)`) and the size the network
actually feeds it differs. The input size is inferred, so `in` can be left out.
";
    EmptyOutput = "E0401", Error, "layer output would be empty",
"A convolution or pooling window does not fit: the output size
`floor((H + 2*padding - kernel) / stride) + 1` is zero or negative. Use a smaller kernel or
stride, more padding, or fewer pooling layers before it.
";
    FlattenRank = "E0402", Error, "flatten of an already flat tensor",
"`flatten` turns a `[C, H, W]` feature map into a vector; its input is already rank 1.
";
    NeedsFlatInput = "E0403", Error, "dense layer on a feature map",
"A dense layer takes a vector, but its input is a `[C, H, W]` feature map. Insert `flatten`
before it.
";
    NeedsImageInput = "E0404", Error, "spatial layer on a vector",
"`conv2d`, `maxpool` and `avgpool` need a `[C, H, W]` input, but the input is a vector. Declare
the network input as `[C, H, W]` (e.g. `input = [1, 28, 28];`).
";
    AddShapeMismatch = "E0405", Error, "`add` of different shapes",
"A residual `add` sums its inputs elementwise; they must have the same shape.
";
    LossPlacement = "E0406", Error, "loss missing or not last",
"A network ends with exactly one loss layer (`softmax_cross_entropy`), and nothing follows it.
";
    ClassCountMismatch = "E0407", Error, "output size differs from the number of classes",
"The layer feeding the loss must output one value per class of the data set (10 for `digits`
and `mnist`).
";
    DataShapeMismatch = "E0408", Error, "network input does not match the data set",
"The network's `input` shape must hold the data set's samples: `digits` has 8x8 = 64 pixels
(`[64]` or `[1, 8, 8]`), `mnist` has 28x28 = 784 (`[784]` or `[1, 28, 28]`), `cifar10` has
3x32x32 = 3072 (`[3, 32, 32]`).
";
    InputCount = "E0409", Error, "wrong number of layer inputs",
"`add` takes two or more inputs (`s: add from a, b;`); every other layer takes exactly one.
";
    TwoLevelAllImc = "E0500", Error, "two-level ADC cannot serve all three MVMs",
"With a hardware whose ADC range has only two settings (`adaptability = [g1, g2]`), the three
training MVMs of a layer cannot all run on IMC. Their outputs have very different
distributions: the forward MVM sums N_in INT4 products, the backward MVM sums N_out products
with radix-4 errors spanning 4^7, the weight-gradient MVM sums over the batch. Two range
settings fit at most two of them without losing the third to clipping or rounding (Grimm &
Verma 2022: 'two-level' quantizer adaptability runs two of three MVMs on IMC, for about 3x
energy saving). Keep one MVM digital, usually the weight-gradient:

    mapping two_level { forward = imc; backward = imc; weight_grad = digital(int4); }
";
    NoMvm = "E0501", Error, "mapping for a layer without MVMs",
"Only `dense` and `conv2d` layers have the three training MVMs; a mapping override for any other
layer has nothing to map.
";
    DigitalTooNarrow = "E0502", Error, "digital precision narrower than the operands",
"An MVM mapped to `digital(P)` must be able to hold its operand formats: `digital(int4)` cannot
execute f32 weights. Widen the precision or quantize the operands.
";
    ImcNeedsQuantized = "E0503", Error, "IMC MVM with unquantized operands",
"IMC arrays store weights bit-parallel as integers and apply inputs as bit planes, exponent planes
or DAC levels, so an MVM mapped to `imc` needs quantized operands: int4/int8 weights and
activations, and radix-4 or int8 errors. Either quantize the layer or map the MVM `digital`.
";
    GainNotAvailable = "E0504", Error, "ADC gain not available on this hardware",
"`adc_range = fixed(G)` asks for a gain the hardware's ADC does not have. With a list of
allowed gains (`adaptability = [1, 8]`) only those gains exist.
";
    FormatRole = "E0505", Error, "format not valid in this role",
"Each operand role has its own formats: weights `int4_sawb`, `int8`, `f32`; activations
`int4_pact`, `int8`, `f32`; errors `radix4`, `int8`, `f32`.
";
    SignedDriveUnsignedAdc = "E0506", Error, "signed drive with an unsigned ADC",
"With `signs = signed`, rows are driven with +1 and -1, so column sums are negative as often as
positive; an unsigned ADC (`adc { zero = unsigned; }`) clips every negative sum to zero. Use a
signed or differential ADC, or apply signs in two passes:

    hardware chip { signs = signed; adc { zero = signed; } }
    hardware chip { signs = two_pass; }
";
    CannotTile = "E0600", Error, "MVM cannot be tiled on the arrays",
"Lowering places every IMC MVM's stored matrix onto arrays bit-parallel: each element of b bits
occupies b adjacent columns of one array. An element wider than the array's columns (8-bit
weights on a 4-column array) cannot be placed. Use wider arrays (`array = ROWS x COLS;`),
a narrower format, or map the MVM `digital`.
";
    SweepWithoutTrain = "E0700", Error, "sweep without train blocks",
"Every point of a sweep is a train run that extends one of the train blocks the sweep names, so
a sweep needs `train = [NAME, ...];`:

    sweep noise { train = [full, two_level]; seed = [1, 2, 3]; }
";
    SweepEmptyAxis = "E0701", Error, "sweep axis without values",
"A sweep's grid is the product of its axes; an axis with no values (`seed = [];`) would make it
empty. Give at least one value or remove the axis.
";
    SweepNotAnAxis = "E0702", Error, "not an axis of a sweep",
"A sweep holds axes: parameters of the train block (`seed = [1, 2];`, `mapping = [full,
two_level];`) and, inside `hardware`, `quant` and `mapping` sections, parameters of the blocks
the train block names (`hardware { adc { bits = [6, 8]; } }`). Layers and per-layer sections
are not axes: write one network, quant or mapping block per variant and sweep its name.
";
    SweepExtends = "E0703", Error, "sweep with `extends`",
"A sweep cannot extend another definition. To run one grid over several train blocks, list
them: `train = [full, two_level];`.
";
    SweepAxisTwice = "E0704", Error, "parameter swept twice",
"Each parameter is one axis of the grid. Put all its values in one list:

    seed = [1, 2, 3, 4];
";
    SweepBadRange = "E0705", Error, "bad range in a sweep",
"`range(FROM, TO, step = STEP)` gives FROM, FROM + STEP, ... up to TO inclusive. FROM, TO and STEP
are plain numbers (a unit goes on the parameter: `sigma_lsb` takes plain numbers in LSB),
STEP > 0 and FROM <= TO.
";
    SweepTooLarge = "E0706", Error, "sweep grid too large",
"A sweep's grid (the product of its axes' lengths) may have at most 100,000 points, so that a
typo in a range does not start a million training runs. Split the sweep or use fewer values.
";
    NoEffect = "W0001", Warning, "setting has no effect",
"The setting is legal but has no effect under the chosen configuration, for example a DAC level
error with bit-serial inputs, or a step schedule that never steps. Remove it, or change the
configuration it depends on. Silently ignored settings cost simulator users days.
";
    Overridden = "W0002", Warning, "setting is overridden",
"The setting is replaced by another one and never used, for example a train block's quant and
mapping under `reference = true` (the f32 reference run uses neither).
";
    UnusedDefinition = "W0003", Warning, "unused definition",
"A definition in the compiled file is not used by any `train` block. (Definitions in imported
files are not reported: a shared chip description need not be used by every model.)
";
    UnusedLayer = "W0004", Warning, "layer output unused",
"The layer's output feeds no other layer and is not the loss, so it does not affect training.
Check the `from` clauses.
";
    DataNotFound = "W0005", Warning, "data set not found",
"The train block's data set is not where it says. Checking, lowering and energy estimates need
no data, so this is a warning; `imcc train` stops with an error. A relative `dir` is resolved
against the file that names it, as imports are; the default directories (`data/digits`,
`data/mnist`) are also looked for in each parent directory of that file, so the bundled data
serves files anywhere in the repository. `idx(\"DIR\")` loads any idx data set
(train-/t10k- images and labels, raw or gzip).
";
    LowRowUse = "W0006", Warning, "IMC MVM drives few array rows",
"An MVM mapped to IMC reduces over fewer rows than the array has, so each conversion sums a
small part of a column. Under `conversions` accounting every conversion costs its full energy
(column evaluation, ADC, shift-add: 1.2 pJ on the 16 nm chip) however few rows it sums, and a
plane cycle takes its full time, so the MVM pays the calibrated energy per MAC (16.9 fJ for
INT4 at 1152 rows) times the inverse of its row share. Typical cases: the weight gradient of a
dense layer (it reduces over the batch only: 64 of 1152 rows at batch 64), the backward MVM of
a narrow layer (it reduces over the layer's outputs: 10 for a classifier), a first layer on
small inputs. What helps: run it digital (`layer fc1 { weight_grad = digital(int4); }`) or let
the compiler decide by cost (`placement = cost(minimize = energy);` in the mapping, which
places every `auto` MVM where the modelled step is cheaper and is not warned about), a larger
batch for weight gradients, or a chip with fewer rows per array. The threshold is the mapping's
`min_row_share` (default 1/8; 0 turns the warning off). `imcc cost` prints every MVM's row
share, energy per MAC and time.
";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for &c in Code::ALL {
            assert!(seen.insert(c.as_str()), "duplicate {}", c.as_str());
            assert_eq!(Code::parse(c.as_str()), Some(c));
            assert!(c.explanation().len() > 40, "{} needs a real explanation", c.as_str());
        }
        assert_eq!(Code::parse("e0003"), Some(Code::SyntaxError));
        assert_eq!(Code::parse("E9999"), None);
    }
}
